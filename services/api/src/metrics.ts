import type { Request, RequestHandler, Response } from 'express';
import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { createRegistry, LATENCY_BUCKETS, METRIC_PREFIX, statusClass } from '@mtls-relay/shared/metrics';

const FORWARD_ROUTE = '/mtls/account/:accountId';
const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The route pattern that answered (bounded label values), never the raw path. */
export function routeLabel(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof route === 'string') return `${req.baseUrl}${route}`;
  if (req.originalUrl.startsWith('/admin/queues')) return '/admin/queues';
  return 'unmatched';
}

/**
 * The API's own metrics: every request by route and status class, and forwards by status class and mTLS use
 * (as the caller saw them, sync waits included). Store timing and the queue and expiry gauges are registered
 * on the same registry by main.ts.
 */
export class ApiMetrics {
  readonly registry: Registry;
  readonly #requests: Histogram<'method' | 'route' | 'status_class'>;
  readonly #forwards: Counter<'method' | 'status_class' | 'mtls'>;
  readonly #forwardDuration: Histogram<'status_class' | 'mtls'>;
  readonly #batchSize: Histogram;

  constructor(registry: Registry = createRegistry('api')) {
    this.registry = registry;
    this.#requests = new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'API requests by method, route pattern and status class',
      labelNames: ['method', 'route', 'status_class'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.#forwards = new Counter({
      name: `${METRIC_PREFIX}forwards_total`,
      help: 'Forward requests answered, by method, status class (the target\'s or the relay\'s) and mTLS use (LP-mtls)',
      labelNames: ['method', 'status_class', 'mtls'] as const,
      registers: [registry],
    });
    this.#forwardDuration = new Histogram({
      name: `${METRIC_PREFIX}forward_duration_seconds`,
      help: 'Forward requests from arrival to the answer (enqueue, worker, target, relay back)',
      labelNames: ['status_class', 'mtls'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.#batchSize = new Histogram({
      name: `${METRIC_PREFIX}forward_batch_size`,
      help: 'Forwards per batch job this api process added (forwards that arrive together share one job)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    });
  }

  /** One batch job added (group commit): how many forwards it carried. */
  batchAdded(forwards: number): void {
    this.#batchSize.observe(forwards);
  }

  /** Records every request when its answer has been sent. Mount first. */
  middleware(): RequestHandler {
    return (req: Request, res: Response, next) => {
      const started = process.hrtime.bigint();
      res.once('finish', () => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const route = routeLabel(req);
        const method = METHODS.has(req.method) ? req.method : 'other';
        const status_class = statusClass(res.statusCode);
        this.#requests.observe({ method, route, status_class }, seconds);
        if (route === FORWARD_ROUTE) {
          const mtls = res.getHeader('lp-mtls') === 'used' ? 'used' : 'none';
          this.#forwards.inc({ method, status_class, mtls });
          this.#forwardDuration.observe({ status_class, mtls }, seconds);
        }
      });
      next();
    };
  }
}
