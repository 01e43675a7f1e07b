import { Redis } from 'ioredis';
import type { Cluster } from 'ioredis';
import { jobKey, parseRecord, recordField } from '@mtls-relay/shared/forward-records';
import type { ForwardRecord } from '@mtls-relay/shared/forward-records';
import { INLINE_REPLY_LIMIT } from '@mtls-relay/shared/jobs';
import type { ReplyMessage } from '@mtls-relay/shared/jobs';
import { errorSummary } from '@mtls-relay/shared/logging';
import { clusterMasterOf, isCluster } from '@mtls-relay/shared/redis';
import type { Logger } from '@mtls-relay/shared/logging';

/** One finished forward: its record, and where its reply goes. */
export interface RecordWrite {
  jobId: string;
  forwardId: string;
  record: ForwardRecord;
  replyTo: string | undefined;
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
 * outcome) and one PUBLISH per reply channel carrying every reply for it. The record comes before the reply in
 * the same pipeline, so a reply never announces what is not recorded; a lost reply is made up for by the api,
 * which rechecks the record.
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

  /** `noteWithinMs`: a runner note waits at most this long for a record pipeline to travel with (well under the job lock). */
  constructor(redis: Redis, prefix: string, logger: Logger, options: { queue?: string; noteWithinMs?: number } = {}) {
    this.#redis = redis;
    this.#sharded = isCluster(redis);
    this.#prefix = prefix;
    this.#queue = options.queue ?? 'forward';
    this.#logger = logger;
    this.#noteWithinMs = options.noteWithinMs ?? 1_000;
  }

  /** Resolves once the record is in Redis (and the reply published). */
  write(write: RecordWrite): Promise<void> {
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
    const pipeline = this.#redis.pipeline();
    const replies = new Map<string, string[]>();
    for (const { write } of batch) {
      pipeline.hsetnx(jobKey(this.#prefix, this.#queue, write.jobId), recordField(write.forwardId), JSON.stringify(write.record));
      if (write.replyTo !== undefined && !('moved' in write.record)) {
        const list = replies.get(write.replyTo) ?? [];
        list.push(replyText(write.forwardId, write.record));
        replies.set(write.replyTo, list);
      }
    }
    for (const c of claims) pipeline.hsetnx(jobKey(this.#prefix, this.#queue, c.jobId), c.field, c.token);
    // A Cluster carries replies by sharded pub/sub; the channel is in this shard's slot, as the records are.
    for (const [channel, texts] of replies) {
      if (this.#sharded) pipeline.spublish(channel, `[${texts.join(',')}]`);
      else pipeline.publish(channel, `[${texts.join(',')}]`);
    }
    for (const note of runners) pipeline.hset(jobKey(this.#prefix, this.#queue, note.jobId), 'runner', note.runner);
    try {
      const results = (await pipeline.exec()) ?? [];
      batch.forEach((p, i) => {
        const err = results[i]?.[0];
        if (err === null || err === undefined) p.resolve();
        else p.reject(err);
      });
      claims.forEach((c, i) => {
        const [err, won] = results[batch.length + i] ?? [new Error('no reply'), 0];
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

function replyText(id: string, record: Exclude<ForwardRecord, { moved: true }>): string {
  const message: ReplyMessage = record.ok ? { id, ok: true, result: record.result } : { id, ok: false, error: record.error };
  const text = JSON.stringify(message);
  // Large results stay in the record; the api reads it when told the forward is done.
  return text.length > INLINE_REPLY_LIMIT && record.ok ? JSON.stringify({ id, ok: true }) : text;
}
