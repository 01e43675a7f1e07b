/**
 * A private Redis Cluster of real redis-server processes on loopback: masters with the slot range split evenly,
 * replicas on demand. Used by the cluster tests and the cluster bench; every process is killed by `close()`
 * (and, failing that, when this process exits).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { freePort } from '../../scripts/lib/ports.ts';
import { reapOnExit } from './reaper.ts';
import type { TestRedis } from './redis.ts';

export interface ClusterNode {
  port: number;
  /** Cluster node id. */
  id: string;
  proc: ChildProcess;
  admin: Redis;
}

export interface TestCluster {
  masters: ClusterNode[];
  replicas: ClusterNode[];
  /** `127.0.0.1:port` of every master (REDIS_CLUSTER_NODES). */
  seeds: string;
  /** A TestRedis for startRelay: its client() is a Cluster client. */
  asTestRedis(): TestRedis;
  /** Adds a replica of `master` and waits until it is in sync. */
  addReplica(master: ClusterNode): Promise<ClusterNode>;
  /** The node that serves `slot` now (asked of `via`). */
  ownerOf(slot: number, via?: ClusterNode): Promise<number>;
  close(): Promise<void>;
}

const SLOTS = 16_384;

async function poll<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last instanceof Error ? ` (${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startNode(dir: string, extra: string[] = []): Promise<ClusterNode> {
  const port = await freePort();
  const proc = reapOnExit(
    spawn(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-announce-ip', '127.0.0.1', '--cluster-node-timeout', '3000',
        // The other masters keep serving while one is down (a stopped shard must not stop the relay).
        '--cluster-require-full-coverage', 'no', '--cluster-allow-reads-when-down', 'no',
        '--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--loglevel', 'warning',
        ...extra,
      ],
      { stdio: 'ignore' },
    ),
  );
  const admin = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: (n) => (n > 100 ? null : 100), maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
  await poll(`redis-server on ${port}`, 10_000, async () => {
    if (admin.status !== 'ready') await admin.connect().catch(() => undefined);
    return (await admin.ping()) === 'PONG' ? true : undefined;
  });
  const id = String(await admin.call('CLUSTER', 'MYID'));
  return { port, id, proc, admin };
}

/** Starts `masters` masters, splits the slots evenly over them and waits for the cluster to be ok everywhere. */
export async function startTestCluster(masters = 3): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-cluster-'));
  const nodes = await Promise.all(Array.from({ length: masters }, () => startNode(dir)));
  for (const [i, node] of nodes.entries()) {
    await node.admin.call('CLUSTER', 'ADDSLOTSRANGE', String(Math.floor((i * SLOTS) / masters)), String(Math.floor(((i + 1) * SLOTS) / masters) - 1));
  }
  for (const node of nodes.slice(1)) await node.admin.call('CLUSTER', 'MEET', '127.0.0.1', String(nodes[0]?.port));
  for (const node of nodes) {
    await poll('cluster ok', 20_000, async () => {
      const info = String(await node.admin.call('CLUSTER', 'INFO'));
      return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`) ? true : undefined;
    });
  }
  const replicas: ClusterNode[] = [];
  const clients: Array<Redis | Cluster> = [];
  const cluster: TestCluster = {
    masters: nodes,
    replicas,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    asTestRedis: () => ({
      url: `redis://127.0.0.1:${nodes[0]?.port}`,
      port: nodes[0]?.port as number,
      pid: () => undefined,
      stop: () => Promise.reject(new Error('not supported on a cluster')),
      start: () => Promise.reject(new Error('not supported on a cluster')),
      client: () => {
        const c = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
        c.on('error', () => undefined);
        clients.push(c);
        return c as unknown as Redis;
      },
      close: async () => clients.forEach((c) => c.disconnect()),
    }),
    addReplica: async (master) => {
      const node = await startNode(dir);
      await node.admin.call('CLUSTER', 'MEET', '127.0.0.1', String(master.port));
      await poll('replica knows its master', 20_000, async () => (String(await node.admin.call('CLUSTER', 'NODES')).includes(master.id) ? true : undefined));
      await node.admin.call('CLUSTER', 'REPLICATE', master.id);
      await poll('replica in sync', 20_000, async () => (String(await node.admin.info('replication')).includes('master_link_status:up') ? true : undefined));
      replicas.push(node);
      return node;
    },
    ownerOf: async (slot, via = nodes[0] as ClusterNode) => {
      const slots = (await via.admin.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
      const range = slots.find(([low, high]) => slot >= low && slot <= high);
      if (range === undefined) throw new Error(`no node serves slot ${slot}`);
      return Number(range[2][1]);
    },
    close: async () => {
      clients.forEach((c) => c.disconnect());
      const all = [...nodes, ...replicas];
      for (const n of all) n.admin.disconnect();
      await Promise.all(
        all.map(
          (n) =>
            new Promise<void>((resolve) => {
              if (n.proc.exitCode !== null || n.proc.signalCode !== null) return resolve();
              n.proc.once('exit', () => resolve());
              n.proc.kill('SIGCONT');
              n.proc.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** Calls per command since the node started (INFO commandstats), less the INFO calls that read them. */
export async function nodeCommandCalls(admin: Redis): Promise<number> {
  const text = String(await admin.info('commandstats'));
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m !== null && m[1] !== 'info' && m[1] !== 'cluster' && m[1] !== 'ping') total += Number(m[2]);
  }
  return total;
}
