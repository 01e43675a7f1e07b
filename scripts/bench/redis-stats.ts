// Redis's own count of the commands it ran (INFO commandstats), scripts' inner commands included: Redis counts
// every redis.call of a script under that command's name, and the EVALSHA itself once.
import type { Redis } from 'ioredis';

/** Total calls per command name since the server started. */
export async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const text = String(await redis.info('commandstats'));
  const calls = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m !== null) calls.set(m[1] as string, Number(m[2]));
  }
  return calls;
}

/** Commands run between two snapshots, less the INFO calls that took the snapshots. */
export function commandsBetween(before: Map<string, number>, after: Map<string, number>): { total: number; byCommand: Record<string, number> } {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [name, n] of after) {
    const d = n - (before.get(name) ?? 0) - (name === 'info' ? 1 : 0);
    if (d <= 0) continue;
    byCommand[name] = d;
    total += d;
  }
  return { total, byCommand };
}

/** The api's batch-size histogram (sum and count of forward_batch_size) from its /metrics. */
export async function batchTotals(metricsUrl: string, headers: Record<string, string>): Promise<{ forwards: number; batches: number }> {
  const res = await fetch(metricsUrl, { headers });
  const text = await res.text();
  const value = (name: string): number => Number(new RegExp(`^mtls_relay_forward_batch_size_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { forwards: value('sum'), batches: value('count') };
}
