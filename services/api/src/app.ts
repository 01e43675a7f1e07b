import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Express, RequestHandler } from 'express';
import type { CertificateStore } from '@mtls-relay/shared/store';
import { RelayError } from '@mtls-relay/shared/errors';
import type { Logger } from '@mtls-relay/shared/logging';
import { errorHandler } from './problem.ts';
import { requestHygiene } from './hygiene.ts';
import type { JobQueues } from './queueing/queue.ts';
import type { ResultWaiter } from './queueing/waiter.ts';
import { forwardRouter } from './routes/forward.ts';
import type { ForwardRouteDeps } from './routes/forward.ts';
import { healthRouter } from './routes/health.ts';
import type { ReadinessCheck } from '@mtls-relay/shared/readiness';
import { jobsRouter } from './routes/jobs.ts';
import { canAccessAccount } from './auth/access.ts';
import { cloudflareErrorHandler, cloudflareNotFound } from './cloudflare.ts';
import { certificatesRouter } from './routes/certificates.ts';
import { mappingCheckRouter } from './routes/mapping-check.ts';
import { mappingsRouter } from './routes/mappings.ts';
import { settingsRouter } from './routes/settings.ts';
import type { ApiMetrics } from './metrics.ts';
import { adminQueuesRouter } from './routes/admin-queues.ts';
import { consoleRouter } from './routes/console.ts';
import { docsRouter } from './routes/docs.ts';
import { metricsRouter } from './routes/metrics.ts';
import { whoamiRouter } from './routes/whoami.ts';

export interface AppDeps extends ForwardRouteDeps {
  logger: Logger;
  /** The job queues (mapping checks, the queue dashboard) and the reply waiter. */
  queues: JobQueues;
  waiter: ResultWaiter;
  /** The certificate store (admin routes); changes are announced to the workers by its onChange hook. */
  store: CertificateStore;
  /** Request header lines allowed before 431 (the server's maxHeadersCount must be above it). */
  maxHeaderCount?: number;
  /** Authentication middleware: sets res.locals.principal or answers 401/403. Health routes stay open. */
  authenticate?: RequestHandler;
  readiness: ReadinessCheck[];
  isShuttingDown: () => boolean;
  /** Prometheus metrics: request timing and GET /metrics (behind authentication unless METRICS_PUBLIC). */
  metrics?: ApiMetrics;
}

const PROBE_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The first path segments under which the open routers (health, docs, console) answer. A request elsewhere — every
 * forward — passes them by with one lookup instead of being matched against each of their routes in turn.
 */
const OPEN_SEGMENTS: ReadonlySet<string> = new Set(['healthz', 'readyz', 'openapi.json', 'docs', 'console']);

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  // Express matches routes case-insensitively (the routers' default), so the segment is compared in lower case.
  return (end === -1 ? path.slice(1) : path.slice(1, end)).toLowerCase();
}

/** Builds the Express app from its dependencies; no I/O of its own. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[\x21-\x7e]{1,128}$/.test(given) ? given : randomUUID();
    res.locals['requestId'] = requestId;
    res.setHeader('X-Request-Id', requestId);
    const started = performance.now();
    // One line per request: the id ties it to the job's worker lines and to what the target received.
    res.once('finish', () => {
      // The whole path: a router mounted on a prefix (the Cloudflare routes on /accounts) moves the prefix from
      // `req.path` to `req.baseUrl` while it handles the request, and the answer may finish there.
      const path = `${req.baseUrl}${req.path}`;
      // Probes and scrapes every few seconds would drown the rest: debug level for them.
      const level = PROBE_PATHS.has(path) ? 'debug' : 'info';
      deps.logger[level](
        { reqId: requestId, method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started), jobId: res.getHeader('lp-job-id') },
        'request',
      );
    });
    next();
  });
  if (deps.metrics !== undefined) app.use(deps.metrics.middleware());

  app.use(requestHygiene({ maxHeaderCount: deps.maxHeaderCount ?? 100 }));
  // Open routes, before authentication; a request for none of them leaves this router at its first layer.
  const open = express.Router();
  open.use((req, _res, next) => next(OPEN_SEGMENTS.has(firstSegment(req.path)) ? undefined : 'router'));
  open.use(healthRouter({ checks: deps.readiness, isShuttingDown: deps.isShuttingDown }));
  open.use(docsRouter());
  open.use(consoleRouter());
  app.use(open);
  if (deps.authenticate !== undefined) app.use(deps.authenticate);
  app.use(forwardRouter(deps));
  app.use(whoamiRouter());
  app.use(jobsRouter({ ring: deps.ring, records: deps.records, canSee: (_req, res, accountId) => canAccessAccount(res, accountId) }));
  app.use(mappingsRouter({ store: deps.store, allowHttp: deps.allowHttp }));
  app.use(mappingCheckRouter({ queues: deps.queues, waiter: deps.waiter, syncWaitMs: deps.syncWaitMs }));
  // Cloudflare-shaped routes: settings before certificates (`settings` is not a certificate id); every
  // answer under /accounts, errors and unknown routes included, is Cloudflare's JSON envelope.
  app.use(settingsRouter({ store: deps.store }));
  app.use(certificatesRouter({ store: deps.store }));
  app.use('/accounts', cloudflareNotFound);
  app.use('/accounts', cloudflareErrorHandler(deps.logger));
  if (deps.metrics !== undefined) app.use(metricsRouter(deps.metrics.registry));
  app.use(adminQueuesRouter(deps.queues.all));

  app.use((_req, _res, next) => next(new RelayError('not_found', 'no such route')));
  app.use(errorHandler(deps.logger));
  return app;
}
