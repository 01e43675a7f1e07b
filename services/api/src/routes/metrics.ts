import express from 'express';
import type { Router } from 'express';
import type { Registry } from 'prom-client';

/**
 * `GET /metrics` (Prometheus text format). Mounted after authentication: any valid credentials may read it,
 * or nobody needs any with METRICS_PUBLIC=true (the authenticator then lets /metrics through).
 */
export function metricsRouter(registry: Registry): Router {
  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    const text = await registry.metrics();
    res.setHeader('Content-Type', registry.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.end(text);
  });
  return router;
}
