import { Worker } from 'bullmq';
import type { Job, Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import { errorPayloadOf, INLINE_REPLY_LIMIT, JOB_NAMES, JOBS } from '@mtls-relay/shared/jobs';
import type { JobName, ReplyMessage } from '@mtls-relay/shared/jobs';
import { errorSummary } from '@mtls-relay/shared/logging';
import type { Logger } from '@mtls-relay/shared/logging';
import type { JobObserver } from './metrics.ts';
import { AttemptError } from './processors/forward.ts';

export interface WorkerSettings {
  prefix: string;
  concurrency: number;
  lockDurationMs: number;
  retryBaseDelayMs: number;
  /** Upper bound of one backoff delay, ms. */
  retryMaxDelayMs: number;
}

/**
 * Exponential backoff with full jitter; a target's Retry-After (carried by AttemptError) is a floor.
 * BullMQ calls this for jobs whose backoff type is 'jitter'.
 */
export function backoffDelay(attemptsMade: number, err: unknown, settings: Pick<WorkerSettings, 'retryBaseDelayMs' | 'retryMaxDelayMs'>): number {
  const ceiling = Math.min(settings.retryMaxDelayMs, settings.retryBaseDelayMs * 2 ** Math.max(0, attemptsMade - 1));
  const jittered = Math.floor(Math.random() * ceiling);
  const retryAfter = err instanceof AttemptError && err.retryAfter !== undefined ? err.retryAfter * 1000 : 0;
  return Math.max(jittered, retryAfter);
}

/**
 * Starts one BullMQ Worker per job name. Every job name in the catalogue must have a processor, or startup
 * fails. When a job finishes for good, the waiting API process is told on its reply channel.
 */
export function startWorkers(deps: {
  processors: Record<JobName, Processor>;
  connection: Redis;
  publisher: Redis;
  logger: Logger;
  settings: WorkerSettings;
  /** Told of every finished attempt (metrics). */
  observer?: JobObserver;
}): Worker[] {
  const missing = JOB_NAMES.filter((name) => typeof deps.processors[name] !== 'function');
  if (missing.length > 0) throw new Error(`no processor registered for job(s): ${missing.join(', ')}`);

  return JOB_NAMES.map((name) => {
    const worker = new Worker(JOBS[name].queue, deps.processors[name], {
      connection: deps.connection,
      prefix: deps.settings.prefix,
      concurrency: deps.settings.concurrency,
      lockDuration: deps.settings.lockDurationMs,
      // Look for jobs whose worker died as often as a lock can expire.
      stalledInterval: Math.min(30_000, deps.settings.lockDurationMs),
      maxStalledCount: 1,
      settings: { backoffStrategy: (attemptsMade, _type, err) => backoffDelay(attemptsMade, err, deps.settings) },
    });
    const log = deps.logger.child({ queue: JOBS[name].queue });
    worker.on('error', (err) => log.error(errorSummary(err), 'worker error'));
    worker.on('stalled', (jobId) => log.warn({ jobId }, 'job stalled: its worker stopped renewing the lock'));
    worker.on('completed', (job: Job, result: unknown) => {
      deps.observer?.completed(name, job, result);
      void reply(deps.publisher, job, { id: job.id as string, ok: true, result }, log);
    });
    worker.on('failed', (job: Job | undefined, err: Error) => {
      if (job !== undefined) deps.observer?.failed(name, job, err, job.finishedOn !== undefined);
      // Only a final failure is announced; a failed attempt that will be retried is not.
      if (job === undefined || job.finishedOn === undefined) return;
      void reply(deps.publisher, job, { id: job.id as string, ok: false, error: errorPayloadOf(err.message) }, log);
    });
    return worker;
  });
}

async function reply(publisher: Redis, job: Job, message: ReplyMessage, log: Logger): Promise<void> {
  const channel = (job.data as { replyTo?: unknown }).replyTo;
  if (typeof channel !== 'string') return;
  let text = JSON.stringify(message);
  // Large results stay in the job; the API fetches them when told the job is done.
  if (text.length > INLINE_REPLY_LIMIT && message.ok) text = JSON.stringify({ id: message.id, ok: true });
  try {
    await publisher.publish(channel, text);
  } catch (err) {
    // The API falls back to reading the job's state when its wait runs out.
    log.warn({ jobId: job.id, ...errorSummary(err) }, 'could not publish job reply');
  }
}
