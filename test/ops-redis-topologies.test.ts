/**
 * Scale-out Redis topologies with real redis-server processes: the relay (api + worker) runs against a Redis
 * Cluster (one node owning every slot, hash-tagged QUEUE_PREFIX) and behind a Sentinel, and forwards work end to end.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { loadConfig } from '../packages/shared/src/config.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startTestRedis } from './support/redis.ts';
import { freePort } from '../scripts/lib/ports.ts';
import type { TestRedis } from './support/redis.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

const external = process.env['REDIS_URL'] !== undefined && process.env['REDIS_URL'] !== '';
let target: MtlsTarget;
let serverCaPem: string;
const processes: ChildProcess[] = [];
const dirs: string[] = [];

function redisServer(args: string[]): ChildProcess {
  const proc = spawn('redis-server', args, { stdio: 'ignore' });
  processes.push(proc);
  return proc;
}

/** A TestRedis for startRelay over a server this file started (closing it is this file's job). */
function asTestRedis(port: number): TestRedis {
  const clients: Redis[] = [];
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => undefined,
    stop: () => Promise.reject(new Error('not supported')),
    start: () => Promise.reject(new Error('not supported')),
    client: () => {
      const c = new Redis(port, '127.0.0.1');
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    close: async () => clients.forEach((c) => c.disconnect()),
  };
}

async function forwardThrough(relay: Relay): Promise<void> {
  const res = await request(`${relay.api.url}/mtls/account/topo`, {
    method: 'POST',
    headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/echo` },
    body: 'through the topology',
  });
  expect(res.statusCode).toBe(200);
  expect(res.headers['lp-mtls']).toBe('none');
  const echoed = JSON.parse(await res.body.text()) as { bodyBase64: string };
  expect(Buffer.from(echoed.bodyBase64, 'base64').toString()).toBe('through the topology');
  expect((await request(`${relay.api.url}/readyz`)).statusCode).toBe(200);
  expect((await request(`${relay.workers[0]?.url}/readyz`)).statusCode).toBe(200);
}

describe.skipIf(external)('Redis Cluster and Sentinel (private redis-server processes)', () => {
  beforeAll(async () => {
    const serverCa = await createCA('topo-server-ca');
    serverCaPem = serverCa.certPem;
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: serverCa.certPem, requireClientCert: false });
  });

  afterAll(async () => {
    await target?.close();
    await Promise.all(processes.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    })));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a cluster needs a hash-tagged QUEUE_PREFIX; with one, the relay forwards through a Redis Cluster', async () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'mtls-relay' })).toThrow(/QUEUE_PREFIX: .*hash tag, for example \{mtls-relay\}/);
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-cluster-'));
    dirs.push(dir);
    redisServer([
      // A lone node learns its own address only from peers: announce it, or CLUSTER SLOTS names no host.
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-announce-ip', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
      '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--loglevel', 'warning',
    ]);
    const admin = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
    admin.on('error', () => undefined);
    await vi.waitFor(() => admin.connect(), { timeout: 10_000, interval: 100 });
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await vi.waitFor(async () => expect(await admin.call('CLUSTER', 'INFO')).toContain('cluster_state:ok'), { timeout: 10_000, interval: 100 });
    admin.disconnect();

    const prefix = `{t${randomBytes(4).toString('hex')}}`;
    const relay = await startRelay({
      redis: asTestRedis(port),
      targetCaPem: serverCaPem,
      env: { REDIS_CLUSTER_NODES: `127.0.0.1:${port}`, QUEUE_PREFIX: prefix },
    });
    try {
      await forwardThrough(relay);
      // The queue really lives in the cluster, under the hash-tagged prefix.
      const keys = await relay.client.keys(`${prefix}:forward:*`);
      expect(keys.length).toBeGreaterThan(0);
    } finally {
      await relay.close();
    }
  });

  it('the relay finds its Redis through a Sentinel', async () => {
    const master = await startTestRedis();
    const sentinelPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-sentinel-'));
    dirs.push(dir);
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, [
      `port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor relaymaster 127.0.0.1 ${master.port} 1`, 'sentinel down-after-milliseconds relaymaster 5000', '',
    ].join('\n'));
    redisServer([conf, '--sentinel']);
    const sentinel = new Redis(sentinelPort, '127.0.0.1', { lazyConnect: true, retryStrategy: (n) => (n > 50 ? null : 100) });
    sentinel.on('error', () => undefined);
    await vi.waitFor(() => sentinel.connect(), { timeout: 10_000, interval: 100 });
    await vi.waitFor(async () => expect(await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'relaymaster')).toEqual(['127.0.0.1', String(master.port)]), { timeout: 10_000, interval: 100 });
    sentinel.disconnect();

    const relay = await startRelay({
      redis: master,
      targetCaPem: serverCaPem,
      // REDIS_URL's host is unused with Sentinel: a closed port proves the master address came from the sentinel.
      env: { REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, REDIS_SENTINEL_NAME: 'relaymaster', REDIS_URL: `redis://127.0.0.1:${await freePort()}` },
    });
    try {
      await forwardThrough(relay);
    } finally {
      await relay.close();
      await master.close();
    }
  });
});
