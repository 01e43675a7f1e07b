// A closed-loop load generator: `concurrency` loops, each sending its next request as soon as the previous
// answer's body has been read, for `durationMs`. One undici Pool with one connection per loop.
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';

export interface LoadOptions {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  concurrency: number;
  durationMs: number;
  /** For the direct baseline: an Agent that presents the client certificate. */
  dispatcher?: Dispatcher;
}

export interface LoadResult {
  requests: number;
  errors: number;
  statuses: Record<string, number>;
  durationMs: number;
  /** Answers per second: every answer, over the time until the last one (the loops stop starting at the deadline). */
  rps: number;
  /** Mean latency of the answers, in ms. */
  meanMs: number;
  p50: number;
  p99: number;
  /** Every answer's latency in ms, sorted (to merge the slices of one case). */
  latencies: number[];
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const url = new URL(opts.url);
  const pool = opts.dispatcher ?? new Pool(url.origin, { connections: opts.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  const started = performance.now();
  const deadline = started + opts.durationMs;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const res = await pool.request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: (opts.method ?? 'GET') as 'GET',
          headers: opts.headers ?? {},
          body: opts.body ?? null,
        });
        await res.body.dump({ limit: 10 * 1024 * 1024 });
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const durationMs = performance.now() - started;
  if (opts.dispatcher === undefined) await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    statuses,
    durationMs,
    rps: latencies.length / (durationMs / 1000),
    meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    latencies,
  };
}
