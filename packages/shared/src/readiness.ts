import type { Redis } from 'ioredis';
import type { QueueLike } from './metrics.ts';

export interface ReadinessResult {
  ok: boolean;
  detail?: string;
}

/**
 * The queues are usable: their keys answer (right type, reachable slot), and Redis will not evict them.
 * BullMQ loses jobs under any maxmemory-policy but noeviction, so readiness fails until it is fixed.
 */
export async function queuesReady(redis: Redis, queues: QueueLike[]): Promise<ReadinessResult> {
  for (const q of queues) await q.getJobCounts('waiting');
  const info = await redis.info('memory');
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy !== undefined && policy !== 'noeviction') {
    return { ok: false, detail: `Redis maxmemory-policy is ${policy}; the queues need noeviction` };
  }
  return { ok: true };
}
