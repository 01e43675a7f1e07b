import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Redis connections by role.
 * - `producer` (API commands, queue adds): fails fast when Redis is down (`enableOfflineQueue: false`,
 *   one retry per command), so a caller gets 503 at once rather than hanging.
 * - `worker` / `subscriber` (BullMQ workers, blocking reads, pub/sub): retry forever and reconnect,
 *   as BullMQ requires (`maxRetriesPerRequest: null`).
 */
export type RedisRole = 'producer' | 'worker' | 'subscriber';

export function createRedis(url: string, role: RedisRole, logger: Logger, name: string): Redis {
  const common: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    connectTimeout: 2_000,
  };
  const byRole: Record<RedisRole, RedisOptions> = {
    producer: { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 5_000 },
    worker: { maxRetriesPerRequest: null, enableReadyCheck: true },
    subscriber: { maxRetriesPerRequest: null, enableReadyCheck: true },
  };
  const redis = new Redis(url, { ...common, ...byRole[role] });
  let down = false;
  redis.on('error', (err: Error & { code?: string }) => {
    // One line per outage, not one per reconnect attempt.
    if (!down) logger.warn({ redis: name, code: err.code, message: err.message }, 'redis connection error');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({ redis: name }, 'redis connection restored');
    down = false;
  });
  return redis;
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
