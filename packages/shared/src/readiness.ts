import type { Redis } from 'ioredis';
import type { QueueLike } from './metrics.ts';

export interface ReadinessResult {
  ok: boolean;
  detail?: string;
}

export interface ReadinessCheck {
  name: string;
  check: () => Promise<ReadinessResult>;
}

/** The body of `/readyz` (api and worker alike). */
export interface ReadinessReport {
  status: 'ready' | 'not ready';
  shuttingDown: boolean;
  checks: Array<ReadinessResult & { name: string }>;
}

/**
 * Runs every check at once, each bounded by `timeoutMs` (a check that throws or is late fails, with the error's
 * name or "timeout" as its detail: never a message, which may hold an address or a secret). Ready when every
 * check passes and the process is not shutting down.
 */
export async function runReadiness(checks: readonly ReadinessCheck[], isShuttingDown: () => boolean, timeoutMs = 2_000): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<ReadinessResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: 'timeout' }), timeoutMs);
      });
      try {
        return { name: c.name, ...(await Promise.race([c.check(), late])) };
      } catch (err) {
        return { name: c.name, ok: false, detail: err instanceof Error ? err.name : 'Error' };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const shuttingDown = isShuttingDown();
  const ok = !shuttingDown && results.every((r) => r.ok);
  return { status: ok ? 'ready' : 'not ready', shuttingDown, checks: results };
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
