import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { ErrorCode } from '@mtls-relay/shared/errors';
import type { Logger } from '@mtls-relay/shared/logging';
import { PROBLEM_CONTENT_TYPE, problemBody } from '@mtls-relay/shared/problem';
import { runReadiness } from '@mtls-relay/shared/readiness';
import type { ReadinessCheck } from '@mtls-relay/shared/readiness';

export interface HealthServerDeps {
  registry: Registry;
  checks: ReadinessCheck[];
  isShuttingDown: () => boolean;
  logger: Logger;
  checkTimeoutMs?: number;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendProblem(res: ServerResponse, code: ErrorCode): void {
  const body = problemBody(code);
  send(res, body['status'] as number, PROBLEM_CONTENT_TYPE, JSON.stringify(body));
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
      sendProblem(res, 'method_not_allowed');
      return;
    }
    if (path === '/healthz') {
      send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
      return;
    }
    if (path === '/readyz') {
      void runReadiness(deps.checks, deps.isShuttingDown, timeoutMs).then((report) => {
        send(res, report.status === 'ready' ? 200 : 503, 'application/json', JSON.stringify(report));
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
    sendProblem(res, 'not_found');
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
