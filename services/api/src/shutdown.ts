import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import { createShutdown } from '@mtls-relay/shared/lifecycle';
import type { Logger } from '@mtls-relay/shared/logging';
import type { DocumentBackend } from '@mtls-relay/shared/store';
import type { JobQueues } from './queueing/queue.ts';
import type { ResultWaiter } from './queueing/waiter.ts';

/**
 * Readiness goes false first (so a load balancer stops sending), then the server stops accepting and lets
 * requests in flight finish within the bound; waits still open then end with 504 + Location (their jobs keep
 * running and can be polled), then the clients close.
 */
export function apiShutdown(
  parts: { server: Server; waiter: ResultWaiter; queues: JobQueues; backend: DocumentBackend; redis: Redis[]; drainMs: number },
  logger: Logger,
  timeoutMs: number,
): () => Promise<boolean> {
  return createShutdown(
    [
      {
        name: 'http',
        run: () =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              parts.waiter.closeAll();
              parts.server.closeIdleConnections();
            }, parts.drainMs);
            // A keep-alive connection whose last request finishes during the drain is closed as soon as it is idle.
            const sweep = setInterval(() => parts.server.closeIdleConnections(), 100);
            parts.server.close(() => {
              clearTimeout(timer);
              clearInterval(sweep);
              resolve();
            });
            parts.server.closeIdleConnections();
          }),
      },
      { name: 'queues', run: () => parts.queues.close() },
      { name: 'store', run: () => parts.backend.close() },
      { name: 'redis', run: () => Promise.all(parts.redis.map((r) => r.quit())) },
    ],
    logger,
    timeoutMs,
  );
}
