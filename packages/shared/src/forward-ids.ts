import { randomUUID } from 'node:crypto';
import { MAX_BATCH_FORWARDS } from './jobs.ts';

/**
 * Job and forward ids. Every job id is shaped like a UUID; with QUEUE_SHARDS its first two hex digits name its
 * shard. A forward's public id is its batch job's id with the forward's index in the last three hex digits (a batch
 * id ends in `fff`); a retry job's id is its forward's id.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BATCH_MARK = 'fff';

/**
 * A new job id (UUID-shaped). With a shard (QUEUE_SHARDS > 1), its first two hex digits name the shard whose
 * queue holds the job; without one (a single shard), it is random throughout.
 */
export function newJobId(shard?: number): string {
  const uuid = randomUUID();
  if (shard === undefined) return uuid;
  if (!Number.isInteger(shard) || shard < 0 || shard > 0xff) throw new RangeError(`shard ${shard} out of range`);
  return `${shard.toString(16).padStart(2, '0')}${uuid.slice(2)}`;
}

/** A new batch job id (on `shard`, when the relay has several). */
export function newBatchId(shard?: number): string {
  return `${newJobId(shard).slice(0, 33)}${BATCH_MARK}`;
}

/**
 * The shard whose queues hold the job with this id (any job id: batch, forward, retry, mapping), or undefined
 * when the id cannot name one of `count` shards. With one shard every id is on shard 0.
 */
export function shardOfId(id: string, count: number): number | undefined {
  if (count <= 1) return 0;
  if (!UUID.test(id)) return undefined;
  const shard = Number.parseInt(id.slice(0, 2), 16);
  return shard < count ? shard : undefined;
}

export function forwardIdOf(batchId: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_BATCH_FORWARDS) throw new RangeError(`forward index ${index} out of range`);
  return `${batchId.slice(0, 33)}${index.toString(16).padStart(3, '0')}`;
}

/** The batch job that a forward id belongs to; undefined when `id` is not a forward id. */
export function batchIdOf(forwardId: string): string | undefined {
  if (!UUID.test(forwardId) || forwardId.endsWith(BATCH_MARK)) return undefined;
  return `${forwardId.slice(0, 33)}${BATCH_MARK}`;
}
