import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createShutdown } from '@mtls-relay/shared/lifecycle';
import type { Logger } from '@mtls-relay/shared/logging';
import type { DocumentBackend } from '@mtls-relay/shared/store';
import type { BreakerRegistry } from './breakers.ts';
import type { TargetClient } from './outbound/target.ts';

/** Stop taking jobs and let those in flight finish (Worker.close), then close the clients. */
export function workerShutdown(
  parts: { workers: Worker[]; target: TargetClient; breakers: BreakerRegistry; backend: DocumentBackend; redis: Redis[] },
  logger: Logger,
  timeoutMs: number,
): () => Promise<boolean> {
  return createShutdown(
    [
      { name: 'workers', run: () => Promise.all(parts.workers.map((w) => w.close())) },
      { name: 'target', run: () => parts.target.close() },
      { name: 'breakers', run: async () => parts.breakers.shutdown() },
      { name: 'store', run: () => parts.backend.close() },
      { name: 'redis', run: () => Promise.all(parts.redis.map((r) => r.quit())) },
    ],
    logger,
    timeoutMs,
  );
}
