import type { Job } from 'bullmq';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { ERROR_CATALOGUE } from '@mtls-relay/shared/errors';
import type { ErrorCode } from '@mtls-relay/shared/errors';
import type { ForwardResult } from '@mtls-relay/shared/jobs';
import { createRegistry, LATENCY_BUCKETS, METRIC_PREFIX, statusClass } from '@mtls-relay/shared/metrics';
import type { BreakerRegistry } from './breakers.ts';

/** Open and half-open breakers exported one series per origin, at most this many (closed ones only as a count). */
export const MAX_BREAKER_SERIES = 100;

/** What worker.ts tells about every finished job attempt (a forward job carries a batch of forwards). */
export interface JobObserver {
  completed(queue: string, job: Job): void;
  /** `final`: no retry follows. */
  failed(queue: string, job: Job, final: boolean): void;
}

/** What the forward processor tells about each forward. */
export interface ForwardObserver {
  forwardCompleted(result: ForwardResult): void;
  /** The forward ended with this relay error. */
  forwardFailed(code: ErrorCode): void;
  /** An attempt failed; `final`: no other attempt follows. */
  attemptFailed(code: ErrorCode, final: boolean): void;
}

/** The worker's own metrics: forward outcomes, job timings, circuit breakers (plus the shared store timing). */
export class WorkerMetrics implements JobObserver, ForwardObserver {
  readonly registry: Registry;
  readonly #forwards: Counter<'status_class' | 'mtls'>;
  readonly #attemptErrors: Counter<'code' | 'final'>;
  readonly #jobDuration: Histogram<'queue' | 'outcome'>;
  readonly #jobWait: Histogram<'queue'>;

  constructor(breakers: BreakerRegistry, registry: Registry = createRegistry('worker')) {
    this.registry = registry;
    this.#forwards = new Counter({
      name: `${METRIC_PREFIX}forward_jobs_total`,
      help: 'Forward jobs finished for good, by the status class relayed (the target\'s, or the relay error\'s) and mTLS use',
      labelNames: ['status_class', 'mtls'] as const,
      registers: [registry],
    });
    this.#attemptErrors = new Counter({
      name: `${METRIC_PREFIX}forward_attempt_errors_total`,
      help: 'Failed forward attempts by error code; final="false" ones are retried',
      labelNames: ['code', 'final'] as const,
      registers: [registry],
    });
    this.#jobDuration = new Histogram({
      name: `${METRIC_PREFIX}job_duration_seconds`,
      help: 'Time a worker spent on one attempt of a job (certificate lookup, target call, recording)',
      labelNames: ['queue', 'outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.#jobWait = new Histogram({
      name: `${METRIC_PREFIX}job_wait_seconds`,
      help: 'Time from enqueue to the start of the last attempt',
      labelNames: ['queue'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    new Gauge({
      name: `${METRIC_PREFIX}breakers`,
      help: 'Circuit breakers this worker keeps, by state: one per target origin with a failure in the last window or a breaker not closed (healthy origins have none)',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const counts = { closed: 0, open: 0, 'half-open': 0 };
        for (const state of breakers.states().values()) counts[state] += 1;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}breaker_state`,
      help: `1 for each origin whose breaker is open or half-open (at most ${MAX_BREAKER_SERIES} series; closed breakers are only counted)`,
      labelNames: ['origin', 'state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        let n = 0;
        for (const [origin, state] of breakers.states()) {
          if (state === 'closed') continue;
          if (++n > MAX_BREAKER_SERIES) break;
          this.set({ origin, state }, 1);
        }
      },
    });
  }

  #timings(queue: string, job: Job, outcome: string): void {
    const finished = job.finishedOn ?? Date.now();
    if (job.processedOn !== undefined) {
      this.#jobDuration.observe({ queue, outcome }, Math.max(0, finished - job.processedOn) / 1000);
      this.#jobWait.observe({ queue }, Math.max(0, job.processedOn - job.timestamp) / 1000);
    }
  }

  completed(queue: string, job: Job): void {
    this.#timings(queue, job, 'completed');
  }

  failed(queue: string, job: Job, final: boolean): void {
    this.#timings(queue, job, final ? 'failed' : 'retried');
  }

  forwardCompleted(result: ForwardResult): void {
    this.#forwards.inc({ status_class: statusClass(result.status), mtls: result.mtls.used ? 'used' : 'none' });
  }

  forwardFailed(code: ErrorCode): void {
    this.#forwards.inc({ status_class: statusClass(ERROR_CATALOGUE[code].status), mtls: 'none' });
  }

  attemptFailed(code: ErrorCode, final: boolean): void {
    this.#attemptErrors.inc({ code, final: String(final) });
  }
}
