import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { decodeFailure, RelayError } from '@mtls-relay/shared/errors';
import { JOBS, queueOptions, retention } from '@mtls-relay/shared/jobs';
import type { ForwardBatch, JobName, MappingJob, ReplyMessage } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';
import { errorSummary } from '@mtls-relay/shared/logging';

export interface QueueSettings {
  prefix: string;
  resultTtlSeconds: number;
}

/**
 * What became of an add whose answer did not come: `definite` — Redis never ran it (the command was never
 * written: no connection); `unknown` — it was written and may run later (a stalled Redis, a dropped connection).
 */
export class EnqueueError extends Error {
  readonly definite: boolean;
  constructor(definite: boolean, cause: unknown) {
    super(definite ? 'the enqueue was not sent' : 'the enqueue was sent but not confirmed', { cause });
    this.name = 'EnqueueError';
    this.definite = definite;
  }
}

/** ioredis refuses a command at once when no connection is ready (enableOfflineQueue: false): nothing was written. */
function neverSent(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return message.includes('enableOfflineQueue options is false');
}

/**
 * The producer side of the job catalogue. The connection fails fast (no offline queue), so an outage is a 503
 * at once. Forward batches are built by the dispatcher (dispatch.ts); mapping jobs are added one by one.
 */
export class JobQueues {
  readonly queues: Record<JobName, Queue>;
  readonly #connection: Redis;
  readonly #settings: QueueSettings;
  /** Counts (re)connections: a withdraw is only trusted on the connection that carried the add. */
  #epoch = 0;

  constructor(connection: Redis, settings: QueueSettings, logger: Logger) {
    this.#connection = connection;
    this.#settings = settings;
    connection.on('connect', () => {
      this.#epoch += 1;
    });
    const make = (name: JobName): Queue => {
      const q = new Queue(JOBS[name].queue, { connection, ...queueOptions(settings.prefix) });
      q.on('error', (err) => logger.warn({ queue: name, ...errorSummary(err) }, 'queue error'));
      return q;
    };
    this.queues = { forward: make('forward'), mapping: make('mapping'), expiry: make('expiry') };
  }

  /**
   * Adds one batch of forwards as one job. Throws EnqueueError: `definite` when nothing reached Redis; otherwise
   * the add is withdrawn if Redis still has it waiting (on the same connection, so it runs after the add), and
   * only a confirmed withdrawal makes the failure definite.
   */
  async addForwardBatch(batchId: string, batch: ForwardBatch): Promise<void> {
    const epoch = this.#epoch;
    try {
      await this.queues.forward.add('forward', batch, { jobId: batchId, attempts: 1, ...retention(batch.keepSeconds) });
    } catch (cause) {
      if (neverSent(cause)) throw new EnqueueError(true, cause);
      throw new EnqueueError(await this.#withdraw(batchId, epoch), cause);
    }
  }

  /** True when the job is certainly not going to run: removed while still waiting, on the add's own connection. */
  async #withdraw(jobId: string, epoch: number): Promise<boolean> {
    if (epoch !== this.#epoch) return false;
    try {
      const removed = await this.queues.forward.remove(jobId);
      return removed === 1 && epoch === this.#epoch;
    } catch {
      return false;
    }
  }

  async enqueueMapping(jobId: string, payload: MappingJob): Promise<void> {
    try {
      await this.queues.mapping.add('mapping', payload, { jobId, attempts: 3, backoff: { type: 'jitter' }, ...retention(this.#settings.resultTtlSeconds) });
    } catch (cause) {
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable; nothing was enqueued', { cause, retryAfter: 1 });
    }
  }

  /** The outcome of a finished mapping job, or null while it is pending or when it no longer exists. */
  async mappingOutcome(jobId: string): Promise<ReplyMessage | null> {
    let job: Job | undefined;
    try {
      job = await Job.fromId(this.queues.mapping, jobId);
    } catch (cause) {
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable', { cause, retryAfter: 1 });
    }
    if (job?.finishedOn === undefined) return null;
    if (job.failedReason !== undefined && job.failedReason !== '' && (job.returnvalue === null || job.returnvalue === undefined)) {
      return { id: jobId, ok: false, error: decodeFailure(job.failedReason) };
    }
    return { id: jobId, ok: true, result: job.returnvalue };
  }

  get connection(): Redis {
    return this.#connection;
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
  }
}
