/**
 * KEDA triggers for the worker ScaledObject: one per shard's forward and mapping wait list
 * (`<shard prefix>:<queue>:wait`), so that the workers scale on the backlog of every shard.
 */
import { shardLayout } from '../../packages/shared/src/shards.ts';

export interface KedaTrigger {
  type: 'redis' | 'redis-cluster';
  metadata: Record<string, string>;
}

/**
 * Jobs waiting per worker replica that call for one more (the ScaledObject's listLength with one shard). A forward
 * job is a batch of up to 256 forwards, and one waits only when every worker already holds WORKER_CONCURRENCY
 * batches: a few waiting batches are a real backlog. A mapping job is one check.
 */
export const BACKLOG_PER_REPLICA = { forward: 4, mapping: 32 } as const;

/**
 * KEDA scales on the trigger that asks for the most replicas, and each shard's list holds about 1/N of the
 * backlog, so each trigger's listLength is the backlog per replica divided by the shards.
 */
export function kedaTriggers(opts: { queuePrefix: string; shards: number; address: string; cluster: boolean }): KedaTrigger[] {
  const layout = shardLayout(opts.queuePrefix, opts.shards);
  const listLength = (queue: 'forward' | 'mapping'): string => String(Math.max(1, Math.round(BACKLOG_PER_REPLICA[queue] / layout.count)));
  return layout.prefixes.flatMap((prefix) =>
    (['forward', 'mapping'] as const).map((queue) => ({
      type: opts.cluster ? ('redis-cluster' as const) : ('redis' as const),
      metadata: {
        ...(opts.cluster ? { addresses: opts.address } : { address: opts.address }),
        listName: `${prefix}:${queue}:wait`,
        listLength: listLength(queue),
        activationListLength: '1',
      },
    })),
  );
}
