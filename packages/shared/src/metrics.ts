import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Redis } from 'ioredis';
import { EXPIRY_THRESHOLDS_DAYS, expirySnapshotKey } from './jobs.ts';
import type { ExpirySnapshot } from './jobs.ts';
import type { BackendHealth, DocumentBackend } from './store/types.ts';

/**
 * Prometheus metrics both services share: the registry, store latency, and the gauges that describe the whole
 * relay rather than one process (queue depth, oldest waiting job, certificate expiry). The latter are read from
 * Redis at scrape time, so every api and worker exports the same values: aggregate them with max().
 */

export const METRIC_PREFIX = 'mtls_relay_';

export function createRegistry(service: 'api' | 'worker'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** 200 → "2xx". */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/** Seconds-scale buckets from 5 ms to 60 s: forwards, jobs and store calls. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Wraps a store backend so that every call is timed: `mtls_relay_store_operation_duration_seconds`. */
export function timedBackend(backend: DocumentBackend, registry: Registry): DocumentBackend {
  const histogram = new Histogram({
    name: `${METRIC_PREFIX}store_operation_duration_seconds`,
    help: 'Certificate store calls (Vault or embedded), by operation and outcome',
    labelNames: ['backend', 'operation', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const timed = <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const end = histogram.startTimer({ backend: backend.kind, operation });
      try {
        const result = await fn(...args);
        end({ outcome: operation === 'health' && (result as BackendHealth).ok === false ? 'unhealthy' : 'ok' });
        return result;
      } catch (err) {
        // StoreError kinds (not_found, conflict, unavailable, …) are a small fixed set.
        const kind = (err as { kind?: unknown }).kind;
        end({ outcome: typeof kind === 'string' ? kind : 'error' });
        throw err;
      }
    };
  return {
    kind: backend.kind,
    read: timed('read', (path: string) => backend.read(path)),
    write: timed('write', (path: string, data: Record<string, unknown>, options?: { cas?: number }) => backend.write(path, data, options)),
    remove: timed('remove', (path: string) => backend.remove(path)),
    list: timed('list', (folder: string) => backend.list(folder)),
    verify: () => backend.verify(),
    health: timed('health', () => backend.health()),
    close: () => backend.close(),
  };
}

/** What the cluster gauges need of a BullMQ Queue (structural, so that shared does not depend on BullMQ). */
export type QueueState = 'wait' | 'waiting' | 'active' | 'delayed' | 'failed' | 'completed' | 'prioritized';
export interface QueueLike {
  readonly name: string;
  getJobCounts(...types: QueueState[]): Promise<Record<string, number>>;
  getJobs(types: QueueState[], start?: number, end?: number, asc?: boolean): Promise<Array<{ timestamp: number } | undefined>>;
}

const QUEUE_STATES: QueueState[] = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'];

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()),
  ]);
}

/**
 * Queue depth by state (summed over the shards of a queue), age of the oldest waiting job, and certificate expiry (from the latest expiry check's
 * snapshot). A collector that cannot reach Redis leaves its gauge empty and counts the failure; it never fails
 * the whole scrape.
 */
export function registerClusterGauges(
  registry: Registry,
  deps: { queues: QueueLike[]; redis: Redis; prefix: string; timeoutMs?: number; now?: () => number },
): void {
  const timeoutMs = deps.timeoutMs ?? 2_000;
  const now = deps.now ?? Date.now;
  const errors = new Counter({
    name: `${METRIC_PREFIX}metrics_collect_errors_total`,
    help: 'Scrapes in which a gauge could not be read from Redis',
    labelNames: ['collector'] as const,
    registers: [registry],
  });
  const guarded = async (collector: string, gauge: Gauge, run: () => Promise<void>): Promise<void> => {
    gauge.reset();
    try {
      await withTimeout(run(), timeoutMs);
    } catch {
      gauge.reset();
      errors.inc({ collector });
    }
  };

  new Gauge({
    name: `${METRIC_PREFIX}queue_jobs`,
    help: 'Jobs in each queue by state',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      await guarded('queue_jobs', this, async () => {
        // With QUEUE_SHARDS a queue name has one queue per shard: the gauge is their sum.
        const all = await Promise.all(deps.queues.map(async (q) => ({ name: q.name, counts: await q.getJobCounts(...QUEUE_STATES) })));
        const sums = new Map<string, Record<string, number>>();
        for (const { name, counts } of all) {
          const sum = sums.get(name) ?? {};
          for (const state of QUEUE_STATES) sum[state] = (sum[state] ?? 0) + (counts[state] ?? 0);
          sums.set(name, sum);
        }
        for (const [name, sum] of sums) for (const state of QUEUE_STATES) this.set({ queue: name, state }, sum[state] ?? 0);
      });
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}queue_oldest_waiting_job_age_seconds`,
    help: 'Age of the oldest job waiting for a worker (0 when none waits)',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      await guarded('queue_oldest', this, async () => {
        // The oldest over every shard of the queue.
        const all = await Promise.all(deps.queues.map(async (q) => ({ name: q.name, oldest: (await q.getJobs(['wait'], 0, 0, true))[0] })));
        const ages = new Map<string, number>();
        for (const { name, oldest } of all) {
          const age = oldest === undefined ? 0 : Math.max(0, (now() - oldest.timestamp) / 1000);
          ages.set(name, Math.max(ages.get(name) ?? 0, age));
        }
        for (const [name, age] of ages) this.set({ queue: name }, age);
      });
    },
  });

  // One read of the snapshot per scrape feeds the three expiry gauges.
  let snapshotRead: { at: number; value: Promise<ExpirySnapshot | null> } | undefined;
  const snapshot = (): Promise<ExpirySnapshot | null> => {
    const t = now();
    if (snapshotRead === undefined || t - snapshotRead.at > 1_000) {
      snapshotRead = {
        at: t,
        value: deps.redis.get(expirySnapshotKey(deps.prefix)).then((text) => (text === null ? null : (JSON.parse(text) as ExpirySnapshot))),
      };
    }
    return snapshotRead.value;
  };
  const daysLeft = (expiresOn: string): number => (Date.parse(expiresOn) - now()) / 86_400_000;
  new Gauge({
    name: `${METRIC_PREFIX}certificate_expiry_days`,
    help: 'Days until each stored client certificate expires (negative once expired), as of the latest expiry check',
    labelNames: ['account_id', 'certificate_id'] as const,
    registers: [registry],
    async collect() {
      await guarded('certificate_expiry', this, async () => {
        for (const c of (await snapshot())?.certificates ?? []) {
          this.set({ account_id: c.accountId, certificate_id: c.certificateId }, Math.round(daysLeft(c.expiresOn) * 100) / 100);
        }
      });
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}certificates_expiring`,
    help: 'Certificates expiring within 30, 14 and 7 days (not yet expired)',
    labelNames: ['within_days'] as const,
    registers: [registry],
    async collect() {
      await guarded('certificates_expiring', this, async () => {
        const s = await snapshot();
        if (s === null) return;
        for (const t of EXPIRY_THRESHOLDS_DAYS) {
          this.set({ within_days: String(t) }, s.certificates.filter((c) => daysLeft(c.expiresOn) > 0 && daysLeft(c.expiresOn) <= t).length);
        }
      });
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}certificate_expiry_check_timestamp_seconds`,
    help: 'When the latest certificate expiry check ran (Unix time)',
    registers: [registry],
    async collect() {
      await guarded('certificate_expiry_check', this, async () => {
        const s = await snapshot();
        if (s !== null) this.set(s.checkedAt / 1000);
      });
    },
  });
}
