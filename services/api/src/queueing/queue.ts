import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { decodeFailure, RelayError } from '@mtls-relay/shared/errors';
import { jobKey, recordField } from '@mtls-relay/shared/forward-records';
import { newJobId, shardOfId } from '@mtls-relay/shared/forward-ids';
import type { ForwardRecord } from '@mtls-relay/shared/forward-records';
import { JOBS, queueOptions, retention } from '@mtls-relay/shared/jobs';
import type { ForwardBatch, JobName, MappingJob, ReplyMessage } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';
import { keyNodeConnected } from '@mtls-relay/shared/redis';
import { errorSummary } from '@mtls-relay/shared/logging';

export interface QueueSettings {
  /** BullMQ prefix, or one per shard (QUEUE_SHARDS). */
  prefix: string | readonly string[];
  resultTtlSeconds: number;
  /** How often a shard whose add failed is asked whether it answers again (default 2 s); until then new jobs avoid it. */
  shardDownMs?: number;
}

/**
 * An add whose answer did not come. `definite`: nothing will run — the command was never written (no
 * connection), or it was withdrawn while still waiting. Otherwise the outcome is unknown: it was written and may
 * run later (a stalled Redis, a dropped connection); the forwards' records then say what became of them.
 */
export class EnqueueError extends Error {
  readonly definite: boolean;
  constructor(definite: boolean, cause: unknown) {
    super(definite ? 'the enqueue did not happen' : 'the enqueue was sent but not confirmed', { cause });
    this.name = 'EnqueueError';
    this.definite = definite;
  }
}

/**
 * Withdraws a forward batch whose add was not confirmed, in one atomic step. A job still in BullMQ's wait list is
 * taken out of it (no worker can fetch it any more) and deleted; a job no longer there but present was taken by a
 * worker (it runs); a job that is not there at all was never added. In the first and last case each forward gets
 * a record saying that it was not sent, so that polling its id gives a definite answer.
 * KEYS[1] the queue's wait list, KEYS[2] the job hash; ARGV: job id, ttl seconds, timestamp, field/record pairs.
 * Returns 1 when nothing will run, 0 when the job runs.
 */
const WITHDRAW = `
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'timestamp', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1`;

/** The queues of one shard (the expiry queue exists on shard 0 only: its check runs once per relay). */
export type ShardQueues = { forward: Queue; mapping: Queue; expiry?: Queue };

/**
 * The producer side of the job catalogue. The connection fails fast (no offline queue), so an outage is a 503
 * at once. Forward batches are built by the dispatcher (dispatch.ts); mapping jobs are added one by one.
 *
 * With QUEUE_SHARDS > 1 every shard has its own forward and mapping queue (shards.ts); new jobs go to the shards
 * in turn, and a job's id names its shard. A shard whose add failed is skipped for `shardDownMs` (unless every
 * shard is), so new jobs go to the others; an accepted job is never moved.
 */
export class JobQueues {
  /** Shard 0's queues (the only ones without QUEUE_SHARDS). */
  readonly queues: Record<JobName, Queue>;
  readonly shards: readonly ShardQueues[];
  readonly #connection: Redis;
  readonly #settings: QueueSettings;
  readonly #prefixes: readonly string[];
  readonly #downUntil: number[];
  readonly #probing = new Set<number>();
  readonly #logger: Logger;
  #next = 0;
  /** Counts (re)connections: a withdraw is only trusted on the connection that carried the add. */
  #epoch = 0;

  constructor(connection: Redis, settings: QueueSettings, logger: Logger) {
    this.#connection = connection;
    this.#settings = settings;
    this.#prefixes = typeof settings.prefix === 'string' ? [settings.prefix] : settings.prefix;
    this.#downUntil = this.#prefixes.map(() => 0);
    this.#logger = logger;
    connection.on('connect', () => {
      this.#epoch += 1;
    });
    // A Cluster reconnects node by node: a node's connection lost or failing also ends the trust in a withdrawal.
    for (const event of ['-node', 'node error']) {
      connection.on(event, () => {
        this.#epoch += 1;
      });
    }
    const make = (name: JobName, prefix: string): Queue => {
      const q = new Queue(JOBS[name].queue, { connection, ...queueOptions(prefix) });
      q.on('error', (err) => logger.warn({ queue: name, prefix, ...errorSummary(err) }, 'queue error'));
      return q;
    };
    this.shards = this.#prefixes.map((prefix, i) => ({ forward: make('forward', prefix), mapping: make('mapping', prefix), ...(i === 0 ? { expiry: make('expiry', prefix) } : {}) }));
    const first = this.shards[0] as ShardQueues;
    this.queues = { forward: first.forward, mapping: first.mapping, expiry: first.expiry as Queue };
  }

  /** Every queue of every shard (the dashboard, readiness, gauges). */
  get all(): Queue[] {
    return this.shards.flatMap((s) => [s.forward, s.mapping, ...(s.expiry === undefined ? [] : [s.expiry])]);
  }

  get shardCount(): number {
    return this.#prefixes.length;
  }

  /** The shard for the next job: the next in turn that is not marked down (the next in turn when all are). */
  nextShard(now = Date.now()): number {
    const n = this.#prefixes.length;
    const start = this.#next;
    this.#next = (this.#next + 1) % n;
    for (let k = 0; k < n; k++) {
      const shard = (start + k) % n;
      if ((this.#downUntil[shard] as number) <= now) {
        this.#next = (shard + 1) % n;
        return shard;
      }
    }
    return start;
  }

  /**
   * A shard whose add failed: new jobs avoid it until it answers again. Every `shardDownMs` its queue is asked
   * for its length (bounded by the connection's command timeout); the first answer puts it back in turn.
   */
  markDown(shard: number): void {
    if (this.#prefixes.length <= 1 || this.#probing.has(shard)) return;
    this.#probing.add(shard);
    this.#downUntil[shard] = Number.POSITIVE_INFINITY;
    const probe = (): void => {
      const timer = setTimeout(() => {
        (this.shards[shard] as ShardQueues).forward
          .getJobCounts('wait')
          .then(() => {
            this.#downUntil[shard] = 0;
            this.#probing.delete(shard);
            this.#logger.info({ shard }, 'queue shard answers again: new jobs go to it');
          })
          .catch(() => probe());
      }, this.#settings.shardDownMs ?? 2_000);
      timer.unref();
    };
    this.#logger.warn({ shard }, 'queue shard did not take a job: new jobs go to the other shards until it answers');
    probe();
  }

  /** Shards not marked down now. */
  availableShards(now = Date.now()): number {
    return this.#downUntil.filter((t) => t <= now).length;
  }

  #shardOf(jobId: string): number {
    const shard = shardOfId(jobId, this.#prefixes.length);
    if (shard === undefined) throw new RangeError(`job id ${jobId} names no shard`);
    return shard;
  }

  /**
   * Adds one batch of forwards as one job. Throws EnqueueError: `definite` when nothing reached Redis; otherwise
   * the add is withdrawn if Redis still has it waiting (on the same connection, so it runs after the add), and
   * only a confirmed withdrawal makes the failure definite.
   */
  async addForwardBatch(batchId: string, batch: ForwardBatch): Promise<void> {
    const epoch = this.#epoch;
    const shard = this.#shardOf(batchId);
    // No ready connection (the producer has no offline queue): nothing is sent, so "nothing was enqueued" is
    // true, and with QUEUE_SHARDS the batch can go to another shard. On a Cluster, the master of this shard.
    const ready = this.#prefixes.length > 1 ? keyNodeConnected(this.#connection, `${this.#prefixes[shard]}:forward:wait`) : this.#connection.status === 'ready';
    if (!ready) throw new EnqueueError(true, new Error(`the Redis connection for queue shard ${shard} is not ready`));
    try {
      await (this.shards[shard] as ShardQueues).forward.add('forward', batch, { jobId: batchId, attempts: 1, ...retention(batch.keepSeconds) });
    } catch (cause) {
      // Written, or refused by a connection lost since the check above: either way only a withdrawal can tell.
      const withdrawal = await this.#withdraw(this.#prefixes[shard] as string, batchId, batch, epoch);
      // The job was there and already taken by a worker: the add happened, the forwards run as usual.
      if (withdrawal === 'running') return;
      throw new EnqueueError(withdrawal === 'withdrawn', cause);
    }
  }

  /**
   * Withdraws a batch whose add was not confirmed (WITHDRAW above). Redis runs one connection's commands in
   * order, so the withdrawal runs after the add, if the add runs at all. Only an answer on the add's own
   * connection counts; without an answer the withdrawal still runs when Redis resumes, and the forwards'
   * records then say what became of them.
   */
  async #withdraw(prefix: string, jobId: string, batch: ForwardBatch, epoch: number): Promise<'withdrawn' | 'running' | 'unknown'> {
    if (epoch !== this.#epoch) return 'unknown';
    const records = batch.forwards.flatMap((f) => {
      const record: ForwardRecord = {
        a: f.accountId,
        n: 0,
        ok: false,
        error: { code: 'queue_unavailable', detail: 'Redis did not confirm the enqueue in time; the request was withdrawn and never sent', retryAfter: 1 },
      };
      return [recordField(f.id), JSON.stringify(record)];
    });
    try {
      const outcome = await this.#connection.eval(WITHDRAW, 2, `${prefix}:forward:wait`, jobKey(prefix, 'forward', jobId), jobId, batch.keepSeconds, Date.now(), ...records);
      if (epoch !== this.#epoch) return 'unknown';
      return outcome === 1 ? 'withdrawn' : 'running';
    } catch {
      return 'unknown';
    }
  }

  /** An id for a new mapping job, on the next shard in turn. */
  newMappingId(): string {
    return newJobId(this.#prefixes.length > 1 ? this.nextShard() : undefined);
  }

  async enqueueMapping(jobId: string, payload: MappingJob): Promise<void> {
    const shard = this.#shardOf(jobId);
    try {
      await (this.shards[shard] as ShardQueues).mapping.add('mapping', payload, { jobId, attempts: 3, backoff: { type: 'jitter' }, ...retention(this.#settings.resultTtlSeconds) });
    } catch (cause) {
      this.markDown(shard);
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable; nothing was enqueued', { cause, retryAfter: 1 });
    }
  }

  /** The outcome of a finished mapping job, or null while it is pending or when it no longer exists. */
  async mappingOutcome(jobId: string): Promise<ReplyMessage | null> {
    let job: Job | undefined;
    const shard = shardOfId(jobId, this.#prefixes.length);
    if (shard === undefined) return null;
    try {
      job = await Job.fromId((this.shards[shard] as ShardQueues).mapping, jobId);
    } catch (cause) {
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable', { cause, retryAfter: 1 });
    }
    if (job?.finishedOn === undefined) return null;
    if (job.failedReason !== undefined && job.failedReason !== '' && (job.returnvalue === null || job.returnvalue === undefined)) {
      return { id: jobId, ok: false, error: decodeFailure(job.failedReason) };
    }
    return { id: jobId, ok: true, result: job.returnvalue };
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((q) => q.close()));
  }
}
