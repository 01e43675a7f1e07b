import { Queue } from 'bullmq';
import type { Worker } from 'bullmq';
import type { Job, Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import { decodeFailure } from '@mtls-relay/shared/errors';
import { JOB_NAMES, JOBS, queueOptions, retention } from '@mtls-relay/shared/jobs';
import type { ForwardBatch, ForwardEntry, JobName, ReplyMessage } from '@mtls-relay/shared/jobs';
import { errorSummary } from '@mtls-relay/shared/logging';
import { isCluster } from '@mtls-relay/shared/redis';
import type { Logger } from '@mtls-relay/shared/logging';
import type { JobObserver } from './metrics.ts';
import { AttemptError, backoffDelay } from './retry.ts';
import { FetchWorker } from './fetch-worker.ts';
import type { BackoffSettings } from './retry.ts';

export interface WorkerSettings extends BackoffSettings {
  prefix: string;
  /** Jobs one process holds at once per queue (a forward job carries a batch). */
  concurrency: number;
  lockDurationMs: number;
}

/** Adds the retry job that continues one forward of a batch: its id is the forward's id, BullMQ retries it with backoff. */
export function retryJobAdder(queue: Queue): (entry: ForwardEntry, next: { attemptsBefore: number; maxAttempts: number; keepSeconds: number; delayMs: number }) => Promise<void> {
  return async (entry, next) => {
    const data: ForwardBatch = { v: 2, forwards: [entry], attemptsBefore: next.attemptsBefore, maxAttempts: next.maxAttempts, keepSeconds: next.keepSeconds, retry: true };
    await queue.add('forward', data, {
      jobId: entry.id,
      delay: next.delayMs,
      attempts: Math.max(1, next.maxAttempts - next.attemptsBefore),
      backoff: { type: 'jitter' },
      ...retention(next.keepSeconds),
    });
  };
}

/** The queue handle a worker adds retry jobs and schedules with (not a consumer). */
export function producerQueue(name: JobName, connection: Redis, prefix: string): Queue {
  return new Queue(JOBS[name].queue, { connection, ...queueOptions(prefix) });
}

/**
 * Starts one BullMQ Worker per job name. Every job name in the catalogue must have a processor, or startup
 * fails. Forward jobs reply per forward from their processor (recorder.ts); a mapping job's waiting api process
 * is told on its reply channel when the job finishes for good.
 */
export function startWorkers(deps: {
  processors: Record<JobName, Processor>;
  connection: Redis;
  publisher: Redis;
  logger: Logger;
  settings: WorkerSettings;
  /** Names this process on the jobs it takes (BullMQ's processedBy). */
  instanceId: string;
  /** Told of every finished job attempt (metrics). */
  observer?: JobObserver;
  /** The job names to consume (every one by default; with QUEUE_SHARDS, the expiry job on shard 0 only). */
  jobNames?: readonly JobName[];
}): Worker[] {
  const missing = JOB_NAMES.filter((name) => typeof deps.processors[name] !== 'function');
  if (missing.length > 0) throw new Error(`no processor registered for job(s): ${missing.join(', ')}`);

  return (deps.jobNames ?? JOB_NAMES).map((name) => {
    const worker: Worker = new FetchWorker(JOBS[name].queue, deps.processors[name], {
      connection: deps.connection,
      prefix: deps.settings.prefix,
      name: deps.instanceId,
      concurrency: deps.settings.concurrency,
      lockDuration: deps.settings.lockDurationMs,
      // Look for jobs whose worker died as often as a lock can expire.
      stalledInterval: Math.min(30_000, deps.settings.lockDurationMs),
      maxStalledCount: 1,
      settings: {
        backoffStrategy: (attemptsMade, _type, err, job) =>
          backoffDelay(
            attemptsMade + Number((job?.data as { attemptsBefore?: unknown } | undefined)?.attemptsBefore ?? 0),
            err instanceof AttemptError ? err.retryAfter : undefined,
            deps.settings,
          ),
      },
    });
    const log = deps.logger.child({ queue: JOBS[name].queue, prefix: deps.settings.prefix });
    worker.on('error', (err) => log.error(errorSummary(err), 'worker error'));
    worker.on('stalled', (jobId) => log.warn({ jobId }, 'job stalled: its worker stopped renewing the lock'));
    worker.on('completed', (job: Job, result: unknown) => {
      deps.observer?.completed(name, job);
      if (name === 'mapping') void reply(deps.publisher, job, { id: job.id as string, ok: true, result }, log);
    });
    worker.on('failed', (job: Job | undefined, err: Error) => {
      if (job !== undefined) deps.observer?.failed(name, job, job.finishedOn !== undefined);
      // Only a final failure is announced; a failed attempt that will be retried is not.
      if (name !== 'mapping' || job === undefined || job.finishedOn === undefined) return;
      void reply(deps.publisher, job, { id: job.id as string, ok: false, error: decodeFailure(err.message) }, log);
    });
    return worker;
  });
}

async function reply(publisher: Redis, job: Job, message: ReplyMessage, log: Logger): Promise<void> {
  const channel = (job.data as { replyTo?: unknown }).replyTo;
  if (typeof channel !== 'string') return;
  try {
    // A Cluster carries replies by sharded pub/sub: the channel lives in the job's shard's slot.
    const text = JSON.stringify([message]);
    await (isCluster(publisher) ? publisher.spublish(channel, text) : publisher.publish(channel, text));
  } catch (err) {
    // The API falls back to reading the job's state when its wait runs out.
    log.warn({ jobId: job.id, ...errorSummary(err) }, 'could not publish job reply');
  }
}
