import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { RelayError } from '@mtls-relay/shared/errors';
import { errorPayloadOf, JOBS, queueOptions, retention } from '@mtls-relay/shared/jobs';
import type { ForwardJob, JobName, MappingJob, ReplyMessage } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';
import { errorSummary } from '@mtls-relay/shared/logging';

export interface QueueSettings {
  prefix: string;
  forwardAttempts: number;
  resultTtlSeconds: number;
}

/**
 * The producer side of the job catalogue. Payloads are parsed against the catalogue's schema before they
 * are enqueued. The connection fails fast (no offline queue), so an outage is a 503 at once.
 */
export class JobQueues {
  readonly queues: Record<JobName, Queue>;
  readonly #settings: QueueSettings;

  constructor(connection: Redis, settings: QueueSettings, logger: Logger) {
    this.#settings = settings;
    const make = (name: JobName): Queue => {
      const q = new Queue(JOBS[name].queue, { connection, ...queueOptions(settings.prefix) });
      q.on('error', (err) => logger.warn({ queue: name, ...errorSummary(err) }, 'queue error'));
      return q;
    };
    this.queues = { forward: make('forward'), mapping: make('mapping'), expiry: make('expiry') };
  }

  /** `keepSeconds`: keep the result at least this long (an Idempotency-Key's first result is kept 24 h). */
  async enqueueForward(jobId: string, payload: ForwardJob, keepSeconds?: number): Promise<void> {
    const data = JOBS.forward.payload.parse(payload);
    await this.#add('forward', jobId, data, {
      attempts: this.#settings.forwardAttempts,
      backoff: { type: 'jitter' },
    }, Math.max(keepSeconds ?? 0, this.#settings.resultTtlSeconds));
  }

  async enqueueMapping(jobId: string, payload: MappingJob): Promise<void> {
    const data = JOBS.mapping.payload.parse(payload);
    await this.#add('mapping', jobId, data, { attempts: 3, backoff: { type: 'jitter' } }, this.#settings.resultTtlSeconds);
  }

  async #add(name: JobName, jobId: string, data: unknown, opts: { attempts: number; backoff: { type: string } }, keepSeconds: number): Promise<void> {
    try {
      await this.queues[name].add(name, data, { jobId, ...opts, ...retention(keepSeconds) });
    } catch (cause) {
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable; nothing was enqueued', { cause, retryAfter: 1 });
    }
  }

  async getJob(name: JobName, jobId: string): Promise<Job | undefined> {
    try {
      return await Job.fromId(this.queues[name], jobId);
    } catch (cause) {
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable', { cause, retryAfter: 1 });
    }
  }

  /** The outcome of a finished job, or null while it is pending or when it no longer exists. */
  async finalOutcome(name: JobName, jobId: string): Promise<ReplyMessage | null> {
    const job = await this.getJob(name, jobId);
    if (job === undefined) return null;
    if (job.finishedOn === undefined) return null;
    if (job.failedReason !== undefined && job.failedReason !== '' && (job.returnvalue === null || job.returnvalue === undefined)) {
      return { id: jobId, ok: false, error: errorPayloadOf(job.failedReason) };
    }
    return { id: jobId, ok: true, result: job.returnvalue };
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
  }
}
