import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { ChainableCommander, Cluster } from 'ioredis';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { jobKey, outcomeOf, parseRecord, recordField } from '@mtls-relay/shared/forward-records';
import type { ForwardRecord } from '@mtls-relay/shared/forward-records';
import { INLINE_REPLY_LIMIT, isResponseGroupField } from '@mtls-relay/shared/jobs';
import type { ForwardResult, ReplyMessage, ResponseParts } from '@mtls-relay/shared/jobs';
import { errorSummary } from '@mtls-relay/shared/logging';
import { clusterMasterOf, isCluster } from '@mtls-relay/shared/redis';
import type { Logger } from '@mtls-relay/shared/logging';
import { sealResponses } from './response-sealing.ts';

/**
 * One finished forward: its record, and where its reply goes. `response`: the target's response in clear, for an ok
 * record whose `result.response` the recorder fills in when it writes the record — sealed on its own, or the field of
 * the response group it was sealed in with other responses of its job.
 */
export interface RecordWrite {
  jobId: string;
  forwardId: string;
  record: ForwardRecord;
  replyTo: string | undefined;
  response?: ResponseParts;
}

interface Pending {
  write: RecordWrite;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A start claim waiting for the next pipeline. */
interface Claim {
  jobId: string;
  field: string;
  token: string;
  resolve: (won: boolean) => void;
  reject: (err: unknown) => void;
}

/** Jobs whose runner is to be noted in the next pipeline. */
interface RunnerNote {
  jobId: string;
  runner: string;
}

/**
 * Records forward outcomes and sends the replies, with group commit: outcomes that finish while a write is in
 * flight go out together in the next pipeline — one HSETNX per forward (the first outcome recorded is the
 * outcome) and one PUBLISH per reply channel for every reply to it. Several records for one reply channel go as
 * plain HSETNXs followed by a PUBLISH of pointers (ids and jobs) that the api reads the kept records from; a lone one
 * goes through one script (RECORD_AND_REPLY) that publishes its result, or a pointer when another record is there.
 * So a reply never announces what is not recorded, nor anything other than what is: when two runs of one forward
 * finish (a takeover after a Redis stall), the second one's reply leads the api to the record that stayed. A lost
 * reply is made up for by the api, which rechecks the record.
 */
export class ForwardRecorder {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #queue: string;
  readonly #logger: Logger;
  #pending: Pending[] = [];
  #claims: Claim[] = [];
  #runners: RunnerNote[] = [];
  #flushing = false;
  #scheduled = false;
  /** Pipelines written and records in them (metrics, the bench). */
  flushes = 0;
  records = 0;

  readonly #sharded: boolean;
  readonly #noteWithinMs: number;
  #noteTimer: NodeJS.Timeout | undefined;
  readonly #ring: KeyRing | undefined;
  readonly #groupResponses: boolean;
  /** Response group fields: unique to this recorder (random), then a counter. */
  readonly #groupPrefix = `g:${randomBytes(6).toString('hex')}.`;
  #groups = 0;

  /**
   * `noteWithinMs`: a runner note waits at most this long for a record pipeline to travel with (well under the job lock).
   * `ring`: seals the responses of the records written with one. `groupResponses`: responses of one job recorded in
   * one pipeline are sealed together (FORWARD_RESPONSE_SEALING=group); without it each on its own.
   */
  constructor(redis: Redis, prefix: string, logger: Logger, options: { queue?: string; noteWithinMs?: number; ring?: KeyRing; groupResponses?: boolean } = {}) {
    this.#redis = redis;
    this.#sharded = isCluster(redis);
    this.#prefix = prefix;
    this.#queue = options.queue ?? 'forward';
    this.#logger = logger;
    this.#noteWithinMs = options.noteWithinMs ?? 1_000;
    this.#ring = options.ring;
    this.#groupResponses = options.groupResponses ?? true;
    // Sent as EVALSHA (ioredis loads the script when Redis does not know it); one definition per connection.
    if (!('recordAndReply' in redis)) redis.defineCommand('recordAndReply', { lua: RECORD_AND_REPLY });
  }

  /** Resolves once the record is in Redis (and the reply published). */
  write(write: RecordWrite): Promise<void> {
    if (write.response !== undefined && (this.#ring === undefined || !('ok' in write.record) || !write.record.ok)) {
      return Promise.reject(new TypeError('a response in clear needs an ok record and a recorder with a key ring'));
    }
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ write, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Claims the sending of one attempt of a forward (`HSETNX s:{forwardId}:{attempt}` in its job's hash), in the next
   * pipeline: true when this run won it. A forward that must not be sent twice is claimed before it is sent, so a
   * run that takes a job over knows which of its unrecorded forwards were never started (it may send those), and
   * a run that lost its job to a takeover sends nothing the takeover has claimed.
   */
  claimStart(jobId: string, forwardId: string, attempt: number, token: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#claims.push({ jobId, field: `s:${forwardId}:${attempt}`, token, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Notes which worker runs a job (read when a job is taken over after its lock expired). The note travels with
   * the next record pipeline, or on its own after `noteWithinMs`, long before the job's lock can expire, so it
   * costs no write of its own on the lone caller's path. A worker that dies before its note is written is found
   * not connected by a takeover, as it would be with the note. (Under a Redis stall the note is already queued on
   * the connection when the takeover could begin, so it lands first.)
   */
  markRunner(jobId: string, runner: string): void {
    this.#runners.push({ jobId, runner });
    if (this.#noteTimer === undefined) {
      this.#noteTimer = setTimeout(() => {
        this.#noteTimer = undefined;
        this.#schedule(true);
      }, this.#noteWithinMs);
      this.#noteTimer.unref();
    }
  }

  /** The previous runner of a job, if one was noted. */
  async runnerOf(jobId: string): Promise<string | null> {
    return this.#redis.hget(jobKey(this.#prefix, this.#queue, jobId), 'runner');
  }

  /** Records already written for these forwards of a job (by this or another worker). */
  async recorded(jobId: string, forwardIds: readonly string[]): Promise<Map<string, ForwardRecord>> {
    const found = new Map<string, ForwardRecord>();
    if (forwardIds.length === 0) return found;
    const values = await this.#redis.hmget(jobKey(this.#prefix, this.#queue, jobId), ...forwardIds.map(recordField));
    forwardIds.forEach((id, i) => {
      const record = parseRecord(values[i]);
      if (record !== undefined) found.set(id, record);
    });
    return found;
  }

  /**
   * Is the worker process with this connection-name suffix still connected to Redis? A process that died has
   * its sockets closed by the kernel; one that is merely waiting on a stalled Redis keeps them.
   */
  async isConnected(nameSuffix: string, jobId?: string): Promise<boolean> {
    try {
      return await this.#listed(nameSuffix, jobId);
    } catch (err) {
      // CLIENT LIST refused (ACLs, some managed Redis): unknown, so a takeover waits its whole deadline.
      this.#logger.warn({ ...errorSummary(err) }, 'could not list Redis clients; a takeover waits its whole deadline');
      return true;
    }
  }

  async #listed(nameSuffix: string, jobId?: string): Promise<boolean> {
    // On a Cluster, the master that holds this recorder's queue: the one the previous runner took the job from.
    const master = clusterMasterOf(this.#redis, jobKey(this.#prefix, this.#queue, jobId ?? 'x'));
    const nodes = !this.#sharded ? [this.#redis] : master instanceof Redis ? [master] : (this.#redis as unknown as Cluster).nodes('master');
    for (const node of nodes) {
      const list = String(await node.client('LIST'));
      if (list.split('\n').some((line) => line.includes(` name=worker-`) && line.includes(`${nameSuffix} `))) return true;
    }
    return false;
  }

  /** A flush soon, for records; runner notes alone only when `notesDue` (their timer fired). */
  #schedule(notesDue = false): void {
    if (this.#scheduled || this.#flushing) return;
    if (this.#pending.length === 0 && this.#claims.length === 0 && !(notesDue && this.#runners.length > 0)) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    if (this.#noteTimer !== undefined) {
      clearTimeout(this.#noteTimer);
      this.#noteTimer = undefined;
    }
    const batch = this.#pending;
    const claims = this.#claims;
    const runners = this.#runners;
    this.#pending = [];
    this.#claims = [];
    this.#runners = [];
    const pipeline = this.#redis.pipeline() as ChainableCommander & RecordCommands;
    const key = (jobId: string): string => jobKey(this.#prefix, this.#queue, jobId);
    // Each pipeline command, and the records whose fate its answer tells.
    const answers: Pending[][] = [];
    /** A record written as it is (HSETNX), its fate told by its own answer. */
    const plain = (p: Pending): void => {
      pipeline.hsetnx(key(p.write.jobId), recordField(p.write.forwardId), JSON.stringify(p.write.record));
      answers.push([p]);
    };
    const replies = new Map<string, Pending[]>();
    const direct: Pending[] = [];
    for (const p of batch) {
      const { write } = p;
      if (write.replyTo !== undefined && !('moved' in write.record)) {
        const group = replies.get(write.replyTo);
        if (group === undefined) replies.set(write.replyTo, [p]);
        else group.push(p);
      } else direct.push(p);
    }
    try {
      // A lone record with a reply carries its result in the reply: its response is sealed on its own.
      const alone = new Set([...replies.values()].filter((group) => group.length === 1).flat());
      sealResponses(
        this.#ring as KeyRing,
        batch.flatMap((p) => {
          const { jobId, forwardId, record, response } = p.write;
          return response === undefined ? [] : [{ jobId, forwardId, result: resultOf(record), response, alone: alone.has(p) }];
        }),
        {
          group: this.#groupResponses,
          nextField: () => `${this.#groupPrefix}${(this.#groups++).toString(36)}`,
          store: (jobId, field, text) => {
            // Before the records that name it, on the same connection: whoever reads such a record finds its group.
            pipeline.hset(key(jobId), field, text);
            answers.push([]);
          },
        },
      );
      for (const p of direct) plain(p);
      // Records with replies. A reply only ever carries the outcome Redis kept: a record that finds another already
      // there (a second runner of the same forward) must not announce its own.
      // - Several records for one api: written as they are, and the reply points at them (ids and their jobs); the api
      //   reads what Redis kept, one HMGET per job. Through a script their results cost Redis about twice the CPU of
      //   these commands and the api's read together (every argument is copied into Lua): the record script was the
      //   largest share of Redis's CPU per forward under load (docs/performance.md, fifth round).
      // - A lone record (a quiet relay, where the extra round trip would be the lone caller's): one script that
      //   records and replies with the result, or with a pointer when the field is already set.
      for (const [channel, group] of replies) {
        if (group.length > 1) {
          for (const p of group) plain(p);
          const pointers = JSON.stringify(
            group.map((p): ReplyMessage => {
              // A failed record has no response; an ok one names its group when it was sealed in one.
              const { record } = p.write;
              const grouped = 'ok' in record && record.ok && isResponseGroupField(record.result.response);
              return { id: p.write.forwardId, ok: true, job: p.write.jobId, ...(grouped ? { g: record.result.response } : {}) };
            }),
          );
          if (this.#sharded) pipeline.spublish(channel, pointers);
          else pipeline.publish(channel, pointers);
          answers.push([]);
          continue;
        }
        const args = group.flatMap(({ write }) => [
          recordField(write.forwardId),
          JSON.stringify(write.record),
          replyText(write.forwardId, write.record as Exclude<ForwardRecord, { moved: true }>),
          pointerText(write.forwardId),
        ]);
        pipeline.recordAndReply(group.length, ...group.map(({ write }) => key(write.jobId)), channel, this.#sharded ? '1' : '0', ...args);
        answers.push(group);
      }
      for (const c of claims) pipeline.hsetnx(key(c.jobId), c.field, c.token);
      for (const note of runners) pipeline.hset(key(note.jobId), 'runner', note.runner);
      const results = (await pipeline.exec()) ?? [];
      answers.forEach((records, i) => {
        const err = results[i]?.[0];
        for (const p of records) {
          if (err === null || err === undefined) p.resolve();
          else p.reject(err);
        }
      });
      claims.forEach((c, i) => {
        const [err, won] = results[answers.length + i] ?? [new Error('no reply'), 0];
        if (err === null || err === undefined) c.resolve(won === 1);
        else c.reject(err);
      });
      this.flushes += 1;
      this.records += batch.length;
    } catch (err) {
      this.#logger.warn({ records: batch.length, ...errorSummary(err) }, 'could not write forward records');
      for (const p of batch) p.reject(err);
      for (const c of claims) c.reject(err);
    } finally {
      this.#flushing = false;
      // Notes whose timer fired while this pipeline was on the wire are due now.
      this.#schedule(this.#noteTimer === undefined);
    }
  }
}

/**
 * Records of one reply channel, and their replies, atomically. KEYS[i]: the hash of record i's job. ARGV[1]: the
 * channel; ARGV[2]: '1' for sharded pub/sub (a Cluster: the channel is in the shard's slot, as the keys are); then per
 * record: its field, the record, its reply, and the reply to send instead when the field is already set (a pointer:
 * the api then reads the record that is there). Answers 1 or 0 per record: stored, or already there.
 */
const RECORD_AND_REPLY = `local parts = {}
local stored = {}
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  stored[i] = redis.call('HSETNX', KEYS[i], ARGV[at + 1], ARGV[at + 2])
  if stored[i] == 1 then parts[i] = ARGV[at + 3] else parts[i] = ARGV[at + 4] end
end
local message = '[' .. table.concat(parts, ',') .. ']'
if ARGV[2] == '1' then redis.call('SPUBLISH', ARGV[1], message) else redis.call('PUBLISH', ARGV[1], message) end
return stored`;

interface RecordCommands {
  recordAndReply(numberOfKeys: number, ...keysAndArgs: string[]): unknown;
}

/** The result of an ok record written with its response in clear (RecordWrite.response; write() checks it is ok). */
function resultOf(record: ForwardRecord): ForwardResult {
  return (record as Extract<ForwardRecord, { ok: true }>).result;
}

/** A reply without the result: the api reads the forward's record instead. */
const pointerText = (id: string): string => JSON.stringify({ id, ok: true });

function replyText(id: string, record: Exclude<ForwardRecord, { moved: true }>): string {
  const text = JSON.stringify(outcomeOf(id, record));
  // Large results stay in the record; the api reads it when told the forward is done.
  return text.length > INLINE_REPLY_LIMIT && record.ok ? pointerText(id) : text;
}
