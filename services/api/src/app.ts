import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Express, RequestHandler } from 'express';
import type { CertificateStore } from '@mtls-relay/shared/store';
import { RelayError } from '@mtls-relay/shared/errors';
import type { Logger } from '@mtls-relay/shared/logging';
import { errorHandler } from './problem.ts';
import { forwardRouter } from './routes/forward.ts';
import type { ForwardRouteDeps } from './routes/forward.ts';
import { healthRouter } from './routes/health.ts';
import type { ReadinessCheck } from './routes/health.ts';
import { jobsRouter } from './routes/jobs.ts';
import { canAccessAccount } from './auth/access.ts';

export interface AppDeps extends ForwardRouteDeps {
  logger: Logger;
  /** The certificate store (admin routes); changes are announced to the workers by its onChange hook. */
  store: CertificateStore;
  /** Authentication middleware: sets res.locals.principal or answers 401/403. Health routes stay open. */
  authenticate?: RequestHandler;
  readiness: ReadinessCheck[];
  isShuttingDown: () => boolean;
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
    next();
  });

  app.use(healthRouter({ checks: deps.readiness, isShuttingDown: deps.isShuttingDown }));
  if (deps.authenticate !== undefined) app.use(deps.authenticate);
  app.use(forwardRouter(deps));
  app.use(jobsRouter({ ring: deps.ring, queues: deps.queues, canSee: (_req, res, accountId) => canAccessAccount(res, accountId) }));

  app.use((_req, _res, next) => next(new RelayError('not_found', 'no such route')));
  app.use(errorHandler(deps.logger));
  return app;
}
