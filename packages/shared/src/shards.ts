import { createRequire } from 'node:module';

/** Redis Cluster's key → slot function (CRC16 of the hash tag), from the package ioredis itself routes with (untyped). */
const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

/**
 * QUEUE_SHARDS: how one relay spreads over the masters of a Redis Cluster.
 *
 * With one shard (the default) every key is exactly what it always was: the queues under QUEUE_PREFIX (which a
 * Cluster requires to carry a hash tag, so everything sits in one slot). With N > 1 shards:
 * - shard i's BullMQ queues (forward, mapping; expiry on shard 0) live under a prefix of their own whose hash tag
 *   puts them in the i-th N-th of the slot range (`{<QUEUE_PREFIX without braces>-s<i>}`, with a short suffix
 *   when that name's slot falls elsewhere), so that a Cluster whose slots are split evenly over M masters (N a
 *   multiple of M) holds N ÷ M shards per master;
 * - keys outside the queues (idempotency records, OAuth nonces, embedded-store documents, the expiry snapshot)
 *   use QUEUE_PREFIX without its braces, and carry a hash tag per account where several of them go together.
 * Job ids name their shard (forward-records.ts), so a job is found with one lookup.
 */
export interface ShardLayout {
  /** QUEUE_SHARDS. */
  readonly count: number;
  /** BullMQ prefix of each shard's queues. */
  readonly prefixes: readonly string[];
  /** Prefix of the keys outside the queues. */
  readonly keyPrefix: string;
}

export const MAX_QUEUE_SHARDS = 64;
const SLOTS = 16_384;

/** The layout for QUEUE_PREFIX and QUEUE_SHARDS. */
export function shardLayout(queuePrefix: string, count = 1): ShardLayout {
  if (!Number.isInteger(count) || count < 1 || count > MAX_QUEUE_SHARDS) throw new RangeError(`QUEUE_SHARDS ${count} out of range`);
  if (count === 1) return { count, prefixes: [queuePrefix], keyPrefix: queuePrefix };
  const base = queuePrefix.replace(/[{}]/g, '');
  return { count, prefixes: Array.from({ length: count }, (_, i) => `{${shardTag(base, i, count)}}`), keyPrefix: base };
}

/** The hash tag of shard i: `<base>-s<i>`, or `<base>-s<i>.<k>` with the smallest k whose slot lies in the i-th N-th. */
export function shardTag(base: string, index: number, count: number): string {
  const low = Math.floor((index * SLOTS) / count);
  const high = Math.floor(((index + 1) * SLOTS) / count);
  const inRange = (tag: string): boolean => {
    const slot = calculateSlot(tag);
    return slot >= low && slot < high;
  };
  const plain = `${base}-s${index}`;
  if (inRange(plain)) return plain;
  for (let k = 0; k < 100_000; k++) if (inRange(`${plain}.${k}`)) return `${plain}.${k}`;
  return plain;
}

/** The hash slot of a key (what a Cluster routes by). */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

/** A hash tag for an account's keys (account ids are letters, digits and a few marks: never braces). */
export function accountTag(accountId: string): string {
  return `{${accountId.replace(/[{}]/g, '_')}}`;
}
