import type { Redis } from 'ioredis';
import type { QueueLike } from './metrics.ts';
import { pingMasters } from './redis.ts';

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
  return evictionPolicy(redis);
}

async function evictionPolicy(redis: Redis): Promise<ReadinessResult> {
  const info = await redis.info('memory');
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy !== undefined && policy !== 'noeviction') {
    return { ok: false, detail: `Redis maxmemory-policy is ${policy}; the queues need noeviction` };
  }
  return { ok: true };
}

/**
 * QUEUE_SHARDS: ready while at least one shard's queues answer (within `timeoutMs` each), since new jobs go to
 * the shards that answer; the detail names the shards that do not. One shard is `queuesReady`.
 */
export async function shardedQueuesReady(redis: Redis, shards: ReadonlyArray<readonly QueueLike[]>, timeoutMs = 1_200): Promise<ReadinessResult> {
  if (shards.length === 1) return queuesReady(redis, [...(shards[0] ?? [])]);
  // INFO goes to one node of a Cluster; a node that does not answer is a shard that is down, not an error here.
  const policyCheck = Promise.race([
    evictionPolicy(redis).catch((): ReadinessResult => ({ ok: true })),
    new Promise<ReadinessResult>((r) => setTimeout(() => r({ ok: true }), timeoutMs).unref()),
  ]);
  const answers = await Promise.all(
    shards.map(async (queues) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      try {
        return await Promise.race([Promise.all(queues.map((q) => q.getJobCounts('waiting'))).then(() => true), late]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const down = answers.flatMap((ok, i) => (ok ? [] : [i]));
  if (down.length === shards.length) return { ok: false, detail: 'no queue shard answers' };
  const policy = await policyCheck;
  if (!policy.ok) return policy;
  return down.length === 0 ? { ok: true } : { ok: true, detail: `queue shards not answering: ${down.join(', ')}` };
}

/**
 * Redis answers: PING. On a Cluster every master is asked, and one answer is enough (a master that does not
 * answer holds shards that new jobs avoid: `shardedQueuesReady` names them); a single Redis must answer.
 */
export async function redisReady(redis: Redis, timeoutMs = 1_500): Promise<ReadinessResult> {
  const { answered, asked } = await pingMasters(redis, timeoutMs);
  if (answered === 0) return asked > 1 ? { ok: false, detail: 'no Redis Cluster master answers' } : { ok: false };
  return answered === asked ? { ok: true } : { ok: true, detail: `${asked - answered} of ${asked} Redis Cluster masters do not answer` };
}
