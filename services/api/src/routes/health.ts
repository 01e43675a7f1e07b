import express from 'express';
import type { Router } from 'express';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<{ ok: boolean; detail?: string }>;
}

/** `/healthz`: the process is alive. `/readyz`: every dependency answers (Redis, store, queues). */
export function healthRouter(deps: { checks: ReadinessCheck[]; isShuttingDown: () => boolean }): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      deps.checks.map(async (c) => {
        try {
          const r = await Promise.race([
            c.check(),
            new Promise<{ ok: boolean; detail: string }>((resolve) => setTimeout(() => resolve({ ok: false, detail: 'timeout' }), 2_000).unref()),
          ]);
          return { name: c.name, ...r };
        } catch (err) {
          return { name: c.name, ok: false, detail: (err as Error).name };
        }
      }),
    );
    const shuttingDown = deps.isShuttingDown();
    const ok = !shuttingDown && results.every((r) => r.ok);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', shuttingDown, checks: results });
  });
  return router;
}
