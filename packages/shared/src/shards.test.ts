import { describe, expect, it } from 'vitest';
import { batchIdOf, forwardIdOf, newBatchId, newJobId, shardOfId } from './forward-ids.ts';
import { accountTag, shardLayout, shardTag, slotOf } from './shards.ts';

describe('shard layout', () => {
  it('one shard keeps every key where it was: the prefix as configured, for queues and other keys alike', () => {
    expect(shardLayout('{mtls-relay}')).toEqual({ count: 1, prefixes: ['{mtls-relay}'], keyPrefix: '{mtls-relay}' });
    expect(shardLayout('plain', 1)).toEqual({ count: 1, prefixes: ['plain'], keyPrefix: 'plain' });
  });

  it('N shards: a hash tag per shard, each slot in its own N-th of the slot range; other keys drop the braces', () => {
    for (const n of [2, 3, 4, 6, 12]) {
      const layout = shardLayout('{mtls-relay}', n);
      expect(layout.keyPrefix).toBe('mtls-relay');
      expect(layout.prefixes).toHaveLength(n);
      layout.prefixes.forEach((prefix, i) => {
        expect(prefix).toMatch(new RegExp(`^\\{mtls-relay-s${i}(\\.\\d+)?\\}$`));
        const slot = slotOf(`${prefix}:forward:wait`);
        expect(slot).toBe(slotOf(prefix));
        expect(slot).toBeGreaterThanOrEqual(Math.floor((i * 16384) / n));
        expect(slot).toBeLessThan(Math.floor(((i + 1) * 16384) / n));
      });
    }
    // The same on every process: the layout is a function of the settings alone.
    expect(shardTag('mtls-relay', 0, 6)).toBe(shardTag('mtls-relay', 0, 6));
    expect(() => shardLayout('x', 0)).toThrow(RangeError);
    expect(() => shardLayout('x', 65)).toThrow(RangeError);
  });

  it('an account tag keeps an account in one slot and never nests braces', () => {
    expect(accountTag('acct-1')).toBe('{acct-1}');
    expect(accountTag('a{b}')).toBe('{a_b_}');
    expect(slotOf(`x:idem:${accountTag('acct-1')}:k1`)).toBe(slotOf(`y:store:${accountTag('acct-1')}:doc:accounts/acct-1/settings`));
  });
});

describe('job ids name their shard', () => {
  it('a batch, its forwards and their retry jobs are on the shard in the first two hex digits', () => {
    for (const shard of [0, 5, 63]) {
      const batch = newBatchId(shard);
      expect(batch).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(batch.endsWith('fff')).toBe(true);
      const forward = forwardIdOf(batch, 7);
      expect(batchIdOf(forward)).toBe(batch);
      expect(shardOfId(batch, 64)).toBe(shard);
      expect(shardOfId(forward, 64)).toBe(shard);
      expect(shardOfId(newJobId(shard), 64)).toBe(shard);
    }
  });

  it('with one shard every id is on shard 0 (ids stay random throughout); an id naming no shard is unknown', () => {
    const id = newJobId();
    expect(shardOfId(id, 1)).toBe(0);
    expect(shardOfId(newBatchId(5), 6)).toBe(5);
    expect(shardOfId(newBatchId(6), 6)).toBeUndefined();
    expect(shardOfId('not-a-uuid', 6)).toBeUndefined();
    expect(() => newJobId(256)).toThrow(RangeError);
  });
});
