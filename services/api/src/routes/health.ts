import express from 'express';
import type { Router } from 'express';
import { runReadiness } from '@mtls-relay/shared/readiness';
import type { ReadinessCheck } from '@mtls-relay/shared/readiness';

/** `/healthz`: the process is alive. `/readyz`: every dependency answers (Redis, store, queues). */
export function healthRouter(deps: { checks: ReadinessCheck[]; isShuttingDown: () => boolean }): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const report = await runReadiness(deps.checks, deps.isShuttingDown);
    res.status(report.status === 'ready' ? 200 : 503).json(report);
  });
  return router;
}
