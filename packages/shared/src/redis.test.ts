import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { parseHostPort, redisEndpoint, roleOptions } from './redis.ts';

describe('Redis topology settings', () => {
  it('parses host:port, bracketed IPv6 included', () => {
    expect(parseHostPort('redis-0.redis:26379')).toEqual({ host: 'redis-0.redis', port: 26379 });
    expect(parseHostPort('[fd00::1]:6379')).toEqual({ host: 'fd00::1', port: 6379 });
  });

  it('passes Sentinel and Cluster settings from the configuration to the connection', () => {
    const sentinel = loadConfig({ REDIS_SENTINELS: 'a:26379, b:26379', REDIS_SENTINEL_NAME: 'mymaster' });
    expect(redisEndpoint(sentinel)).toMatchObject({ sentinels: ['a:26379', 'b:26379'], sentinelName: 'mymaster', clusterNodes: [] });
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'c:6379', QUEUE_PREFIX: '{relay}' });
    expect(redisEndpoint(cluster)).toMatchObject({ clusterNodes: ['c:6379'], sentinels: [] });
  });

  it('refuses inconsistent topologies at start, naming the variable', () => {
    expect(() => loadConfig({ REDIS_SENTINELS: 'a:26379' })).toThrow(/REDIS_SENTINEL_NAME/);
    expect(() => loadConfig({ REDIS_SENTINELS: 'a', REDIS_SENTINEL_NAME: 'm' })).toThrow(/REDIS_SENTINELS: "a" is not host:port/);
    expect(() => loadConfig({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm', REDIS_CLUSTER_NODES: 'c:1', QUEUE_PREFIX: '{x}' })).toThrow(/exclude each other/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'c:6379' })).toThrow(/QUEUE_PREFIX: .*\{mtls-relay\}/);
  });

  it('keeps the producer fail-fast and the worker connections retrying, whatever the topology', () => {
    expect(roleOptions('producer', 'p')).toMatchObject({ enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    expect(roleOptions('worker', 'w')).toMatchObject({ maxRetriesPerRequest: null });
  });
});
