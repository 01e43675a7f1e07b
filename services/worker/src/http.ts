import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '@mtls-relay/shared/logging';
import type { ReadinessResult } from '@mtls-relay/shared/readiness';

export interface WorkerReadinessCheck {
  name: string;
  check: () => Promise<ReadinessResult>;
}

export interface HealthServerDeps {
  registry: Registry;
  checks: WorkerReadinessCheck[];
  isShuttingDown: () => boolean;
  logger: Logger;
  checkTimeoutMs?: number;
}

async function runCheck(c: WorkerReadinessCheck, timeoutMs: number): Promise<ReadinessResult & { name: string }> {
  try {
    const r = await Promise.race([
      c.check(),
      new Promise<ReadinessResult>((resolve) => setTimeout(() => resolve({ ok: false, detail: 'timeout' }), timeoutMs).unref()),
    ]);
    return { name: c.name, ...r };
  } catch (err) {
    return { name: c.name, ok: false, detail: (err as Error).name };
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

/**
 * The worker's own small HTTP server (plain node:http; the worker has no API): `/healthz` (alive), `/readyz`
 * (Redis, store, queues, workers running; 503 while shutting down) and `/metrics` (Prometheus). It is meant for
 * the cluster network only (probes and the Prometheus scraper); it takes no credentials and exposes no data.
 */
export function createHealthServer(deps: HealthServerDeps): Server {
  const timeoutMs = deps.checkTimeoutMs ?? 2_000;
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'application/problem+json', JSON.stringify({ type: 'urn:mtls-relay:problem:method_not_allowed', title: 'Method Not Allowed', status: 405, code: 'method_not_allowed' }));
      return;
    }
    if (path === '/healthz') {
      send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
      return;
    }
    if (path === '/readyz') {
      void Promise.all(deps.checks.map((c) => runCheck(c, timeoutMs))).then((checks) => {
        const shuttingDown = deps.isShuttingDown();
        const ok = !shuttingDown && checks.every((c) => c.ok);
        send(res, ok ? 200 : 503, 'application/json', JSON.stringify({ status: ok ? 'ready' : 'not ready', shuttingDown, checks }));
      });
      return;
    }
    if (path === '/metrics') {
      deps.registry.metrics().then(
        (text) => send(res, 200, deps.registry.contentType, text),
        (err: unknown) => {
          deps.logger.warn({ message: (err as Error).message }, 'metrics collection failed');
          send(res, 500, 'text/plain', 'metrics collection failed\n');
        },
      );
      return;
    }
    send(res, 404, 'application/problem+json', JSON.stringify({ type: 'urn:mtls-relay:problem:not_found', title: 'Not Found', status: 404, code: 'not_found' }));
  });
}

/** Listens on `port` (0: any free port) and resolves with the port actually bound. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}
