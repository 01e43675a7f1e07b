import { Cluster, Redis } from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { slotOf } from './shards.ts';
import { infrastructureTlsContext } from './trust.ts';

/**
 * Redis connections by role.
 * - `producer` (API commands, queue adds): fails fast when Redis is down (`enableOfflineQueue: false`,
 *   one retry per command), so a caller gets 503 at once rather than hanging.
 * - `worker` / `subscriber` (BullMQ workers, blocking reads, pub/sub): retry forever and reconnect,
 *   as BullMQ requires (`maxRetriesPerRequest: null`).
 */
export type RedisRole = 'producer' | 'worker' | 'subscriber';

/**
 * Where Redis is: a plain URL, or Sentinel, or Cluster. With Sentinel or Cluster, REDIS_URL still supplies the
 * credentials, the database (Sentinel only) and TLS (`rediss:`); its host is not used.
 */
export interface RedisEndpoint {
  url: string;
  sentinels?: readonly string[];
  sentinelName?: string | undefined;
  sentinelPassword?: string | undefined;
  clusterNodes?: readonly string[];
}

export function redisEndpoint(
  config: Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME' | 'REDIS_SENTINEL_PASSWORD' | 'REDIS_CLUSTER_NODES'>,
): RedisEndpoint {
  return {
    url: config.REDIS_URL,
    sentinels: config.REDIS_SENTINELS,
    sentinelName: config.REDIS_SENTINEL_NAME,
    sentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    clusterNodes: config.REDIS_CLUSTER_NODES,
  };
}

/** `host:port` / `[v6]:port` → { host, port }. */
export function parseHostPort(node: string): { host: string; port: number } {
  const at = node.lastIndexOf(':');
  return { host: node.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(node.slice(at + 1)) };
}

/** Credentials, database and TLS taken from the URL, for Sentinel and Cluster connections. */
function urlOptions(url: string): RedisOptions {
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, '') || '0');
  return {
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { secureContext: infrastructureTlsContext() } } : {}),
  };
}

/** The ioredis options for a role; exported for tests. */
export function roleOptions(role: RedisRole, name: string, commandTimeoutMs = 5_000): RedisOptions {
  const common: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    connectTimeout: 2_000,
  };
  const byRole: Record<RedisRole, RedisOptions> = {
    producer: { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: commandTimeoutMs },
    worker: { maxRetriesPerRequest: null, enableReadyCheck: true },
    subscriber: { maxRetriesPerRequest: null, enableReadyCheck: true },
  };
  return { ...common, ...byRole[role] };
}

function connect(endpoint: RedisEndpoint, options: RedisOptions, role: RedisRole): Redis {
  const sentinels = endpoint.sentinels ?? [];
  const clusterNodes = endpoint.clusterNodes ?? [];
  if (sentinels.length > 0) {
    return new Redis({
      ...urlOptions(endpoint.url),
      ...options,
      sentinels: sentinels.map(parseHostPort),
      name: endpoint.sentinelName ?? 'mymaster',
      ...(endpoint.sentinelPassword === undefined ? {} : { sentinelPassword: endpoint.sentinelPassword }),
      sentinelRetryStrategy: (times: number) => Math.min(times * 200, 2_000),
    });
  }
  if (clusterNodes.length > 0) {
    const { enableOfflineQueue, retryStrategy, ...redisOptions } = options;
    const { db: _db, ...fromUrl } = urlOptions(endpoint.url);
    const clusterOptions: ClusterOptions = {
      redisOptions: { ...fromUrl, ...redisOptions },
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      clusterRetryStrategy: (times) => retryStrategy?.(times) ?? Math.min(times * 200, 2_000),
      enableReadyCheck: true,
      // Replies travel by sharded pub/sub on a Cluster (SSUBSCRIBE on the node that holds the channel's slot).
      ...(role === 'subscriber' ? { shardedSubscribers: true } : {}),
    };
    // A Cluster answers the same commands as a single Redis, and every key the relay writes starts with the
    // hash-tagged QUEUE_PREFIX, so multi-key scripts stay in one slot. Typed as Redis so the code has one client type.
    return new Cluster(clusterNodes.map(parseHostPort), clusterOptions) as unknown as Redis;
  }
  // rediss: trusts the CAs the process had at start, never TARGET_CA_FILE (see trust.ts).
  const tls = new URL(endpoint.url).protocol === 'rediss:' ? { tls: { secureContext: infrastructureTlsContext() } } : {};
  return new Redis(endpoint.url, { ...options, ...tls });
}

export function createRedis(endpoint: string | RedisEndpoint, role: RedisRole, logger: Logger, name: string, commandTimeoutMs?: number): Redis {
  const redis = connect(typeof endpoint === 'string' ? { url: endpoint } : endpoint, roleOptions(role, name, commandTimeoutMs), role);
  let down = false;
  redis.on('error', (err: Error & { code?: string }) => {
    // One line per outage, not one per reconnect attempt.
    if (!down) logger.warn({ redis: name, code: err.code, message: err.message }, 'redis connection error');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({ redis: name }, 'redis connection restored');
    down = false;
  });
  return redis;
}

/** Is this connection a Redis Cluster client (typed as Redis, see `connect`)? */
export function isCluster(redis: Redis): boolean {
  return (redis as unknown as { isCluster?: boolean }).isCluster === true;
}

/**
 * PINGs Redis: a single Redis must answer; on a Cluster every master is asked at once (each bounded by
 * `timeoutMs`). Returns how many answered of how many were asked.
 */
export async function pingMasters(redis: Redis, timeoutMs = 1_500): Promise<{ answered: number; asked: number }> {
  if (!isCluster(redis)) return { answered: (await redis.ping()) === 'PONG' ? 1 : 0, asked: 1 };
  const masters = (redis as unknown as Cluster).nodes('master');
  const answers = await Promise.all(
    masters.map((node) =>
      Promise.race([
        node.ping().then((r) => r === 'PONG', () => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref()),
      ]),
    ),
  );
  return { answered: answers.filter(Boolean).length, asked: masters.length };
}

/**
 * On a Cluster: is the master that serves this key's slot connected? False when the slot map names a master this
 * client has no ready connection to (it is down, or being reconnected): a command for that key would only wait.
 * True on a single Redis, and while the slot map is not known yet.
 */
export function keyNodeConnected(redis: Redis, key: string): boolean {
  const master = clusterMasterOf(redis, key);
  return master === 'unknown' || (master !== undefined && master.status === 'ready');
}

/**
 * On a Cluster, the connection to the master that serves a key's slot as the client's slot map has it: undefined
 * when the map names a master the client has no connection to, 'unknown' without a map (or without a Cluster).
 */
export function clusterMasterOf(redis: Redis, key: string): Redis | undefined | 'unknown' {
  if (!isCluster(redis)) return 'unknown';
  const cluster = redis as unknown as Cluster;
  const owner = (cluster as unknown as { slots?: Array<string[] | undefined> }).slots?.[slotOf(key)]?.[0];
  if (owner === undefined) return 'unknown';
  return cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
}

/**
 * Runs one command per key as pipelines: one pipeline on a single Redis; on a Cluster one per hash slot (a
 * Cluster pipeline must stay within one node), all at once. Results come back in the order of `keys`, each as
 * [error, value] like `pipeline.exec()`. On a Cluster a slot whose master is not connected is not sent to (its keys
 * get an error at once), and a slot whose pipeline fails fails alone.
 */
export async function pipelineBySlot(
  redis: Redis,
  keys: readonly string[],
  add: (pipeline: ReturnType<Redis['pipeline']>, index: number) => void,
): Promise<Array<[Error | null, unknown]>> {
  const groups = new Map<number, number[]>();
  const cluster = isCluster(redis);
  keys.forEach((key, i) => {
    const slot = cluster ? slotOf(key) : 0;
    const group = groups.get(slot) ?? [];
    group.push(i);
    groups.set(slot, group);
  });
  const results: Array<[Error | null, unknown]> = keys.map(() => [new Error('not run'), null]);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const fail = (err: Error): void => {
        for (const i of indexes) results[i] = [err, null];
      };
      if (cluster && !keyNodeConnected(redis, keys[indexes[0] as number] as string)) return fail(new Error('the Redis master for this slot is not connected'));
      const pipeline = redis.pipeline();
      for (const i of indexes) add(pipeline, i);
      let replies: Array<[Error | null, unknown]> | null;
      try {
        replies = await pipeline.exec();
      } catch (err) {
        if (!cluster) throw err;
        return fail(err instanceof Error ? err : new Error(String(err)));
      }
      if (replies === null) {
        if (!cluster) throw new Error('the pipeline did not run');
        return fail(new Error('the pipeline did not run'));
      }
      indexes.forEach((i, k) => {
        results[i] = (replies[k] ?? [new Error('no reply'), null]) as [Error | null, unknown];
      });
    }),
  );
  return results;
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
