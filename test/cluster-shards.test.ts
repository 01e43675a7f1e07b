/**
 * QUEUE_SHARDS on a real 3-master Redis Cluster (redis-server processes on loopback): one relay with six shards
 * and the default QUEUE_PREFIX spreads its Redis work over every master, finds every job by its id, loses no
 * accepted job when a replica takes over a master, and keeps taking new jobs on the other shards while one
 * master is stopped (the jobs it had accepted finish once it is back).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { Queue } from 'bullmq';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { echoHandler, startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { accountTag, shardLayout, slotOf } from '../packages/shared/src/shards.ts';
import { loadConfig } from '../packages/shared/src/config.ts';
import { shardOfId } from '../packages/shared/src/forward-ids.ts';
import { nodeCommandCalls, startTestCluster } from './support/cluster.ts';
import type { ClusterNode, TestCluster } from './support/cluster.ts';
import { SHORT_LOCK_ENV, startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

const external = process.env['REDIS_URL'] !== undefined && process.env['REDIS_URL'] !== '';
const SHARDS = 6;
const layout = shardLayout('mtls-relay', SHARDS);
let target: MtlsTarget;
let cluster: TestCluster;
let relay: Relay;
let targetCa: string;

interface Sent {
  status: number;
  jobId: string | undefined;
  code: string | undefined;
}

async function forward(path: string, opts: { async?: boolean; account?: string; key?: string } = {}): Promise<Sent> {
  const res = await request(`${relay.api.url}/mtls/account/${opts.account ?? 'acct-a'}`, {
    method: 'POST',
    headers: {
      ...relay.auth(),
      'lp-forward-url': `${target.url}${path}`,
      ...(opts.async === true ? { prefer: 'respond-async' } : {}),
      ...(opts.key === undefined ? {} : { 'idempotency-key': opts.key }),
    },
    body: 'sharded',
  });
  const text = await res.body.text();
  const jobId = res.headers['lp-job-id'];
  let code: string | undefined;
  if (res.statusCode >= 400) code = (JSON.parse(text) as { code?: string }).code;
  return { status: res.statusCode, jobId: typeof jobId === 'string' ? jobId : undefined, code };
}

/** Runs `n` calls of `fn`, `concurrency` at a time. */
async function many<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

async function stateOf(jobId: string): Promise<{ status: number; state?: string; response?: { status: number } | null }> {
  const res = await request(`${relay.api.url}/mtls/jobs/${jobId}`, { headers: relay.auth() });
  const text = await res.body.text();
  return res.statusCode === 200 ? { status: 200, ...(JSON.parse(text) as { state: string; response: { status: number } | null }) } : { status: res.statusCode };
}

/** Polls every job until it is finished; returns the final states. */
async function allFinished(jobIds: readonly string[], timeoutMs: number): Promise<Map<string, { state?: string; response?: { status: number } | null }>> {
  const done = new Map<string, { state?: string; response?: { status: number } | null }>();
  // The caller asserts on what finished: a timeout returns the jobs that did.
  await vi
    .waitFor(async () => {
      for (const id of jobIds.filter((j) => !done.has(j))) {
        const s = await stateOf(id);
        if (s.state === 'completed' || s.state === 'failed') done.set(id, s);
      }
      if (done.size < jobIds.length) throw new Error(`${jobIds.length - done.size} jobs not finished yet`);
    }, { timeout: timeoutMs, interval: 250 })
    .catch(() => undefined);
  return done;
}

/** The master (by port) serving each shard now. */
async function shardOwners(via?: ClusterNode): Promise<number[]> {
  return Promise.all(layout.prefixes.map((p) => cluster.ownerOf(slotOf(p), via)));
}

describe.skipIf(external)('QUEUE_SHARDS on a 3-master Redis Cluster', () => {
  beforeAll(async () => {
    const ca = await createCA('shards-ca');
    targetCa = ca.certPem;
    const server = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: ca.certPem, requireClientCert: false });
    // /delay/N answers (the echo) after N ms: a forward that is still at the target.
    target.setHandler(async (req, res) => {
      const delay = /^\/delay\/(\d+)/.exec(req.path);
      if (delay !== null) await new Promise((r) => setTimeout(r, Number(delay[1])));
      echoHandler(req, res);
    });
    cluster = await startTestCluster(3);
    relay = await startRelay({
      redis: cluster.asTestRedis(),
      targetCaPem: ca.certPem,
      env: {
        REDIS_CLUSTER_NODES: cluster.seeds,
        // The default prefix, spelled out: the relay adds one hash tag per shard.
        QUEUE_PREFIX: 'mtls-relay',
        QUEUE_SHARDS: String(SHARDS),
        REDIS_COMMAND_TIMEOUT_MS: '1000',
        WORKER_CONCURRENCY: '32',
        RESULT_TTL_SECONDS: '600',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await relay?.close();
    await target?.close();
    await cluster?.close();
  });

  it('with QUEUE_SHARDS > 1 the default prefix is accepted on a Cluster; WORKER_SHARDS names shards that exist', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_SHARDS: '6' })).not.toThrow();
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' })).toThrow(/QUEUE_PREFIX: .*hash tag/);
    expect(() => loadConfig({ QUEUE_SHARDS: '6', WORKER_SHARDS: '0,6' })).toThrow(/WORKER_SHARDS: "6" is not a shard index from 0 to 5/);
    expect(loadConfig({ QUEUE_SHARDS: '6', WORKER_SHARDS: '1, 4' }).WORKER_SHARDS).toEqual(['1', '4']);
  });

  it('each shard has its own hash tag, and an evenly split cluster holds two shards per master', async () => {
    expect(new Set(layout.prefixes.map(slotOf)).size).toBe(SHARDS);
    const owners = await shardOwners();
    for (const m of cluster.masters) expect(owners.filter((p) => p === m.port)).toHaveLength(2);
  });

  it('the embedded store works on the Cluster by account: a certificate and mapping written there are presented', async () => {
    const clientCa = await createCA('shards-client-ca');
    const leaf = await issueCertificate(clientCa, { commonName: 'shards-client', usage: 'client' });
    const cert = await relay.store.createCertificate('acct-m', { name: 'm', certificate: leaf.chainPem, privateKey: leaf.keyPem });
    await relay.store.createMapping('acct-m', { serviceName: 'svc', url: `${target.url}/echo`, certificateId: cert.id });
    const res = await request(`${relay.api.url}/mtls/account/acct-m`, {
      method: 'POST',
      headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/echo`, 'lp-service-name': 'svc' },
      body: 'with a certificate',
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers['lp-mtls']).not.toBe('none');
    expect(target.requests.at(-1)?.clientCert).not.toBeNull();
    // The account's documents sit in its own slot; the list of accounts in the shared one.
    expect(await relay.client.exists(`mtls-relay:store:${accountTag('acct-m')}:doc:accounts/acct-m/certificates/${cert.id}`)).toBe(1);
    expect(await relay.client.smembers('mtls-relay:store:{store}:dir:accounts')).toContain('acct-m/');
  });

  it('sync and async forwards spread over every master (each ≥ 20 % of the Redis commands); every async job is found by its id', async () => {
    const before = await Promise.all(cluster.masters.map((m) => nodeCommandCalls(m.admin)));
    const accounts = ['acct-a', 'acct-b', 'acct-c', 'acct-d', 'acct-e', 'acct-f'];
    const sync = await many(120, 12, (i) => forward('/echo', { account: accounts[i % accounts.length] as string, ...(i % 4 === 0 ? { key: `sync-${i}` } : {}) }));
    expect(sync.map((s) => s.status)).toEqual(sync.map(() => 200));
    const queued = await many(90, 12, (i) => forward('/echo', { async: true, account: accounts[i % accounts.length] as string, ...(i % 3 === 0 ? { key: `async-${i}` } : {}) }));
    expect(queued.map((s) => s.status)).toEqual(queued.map(() => 202));
    const ids = queued.map((q) => q.jobId as string);
    expect(new Set(ids.map((id) => shardOfId(id, SHARDS))).size).toBe(SHARDS);
    const finished = await allFinished(ids, 30_000);
    expect(finished.size).toBe(ids.length);
    for (const s of finished.values()) expect(s).toMatchObject({ state: 'completed', response: { status: 200 } });
    // A replayed Idempotency-Key finds its first request's job, whatever shard holds it.
    const again = await forward('/echo', { async: true, account: 'acct-a', key: 'async-0' });
    expect(again.jobId).toBe(ids[0]);
    // Mapping checks go round the shards too, and their answers come back on each shard's reply channel.
    const checks = await many(SHARDS, SHARDS, async () => {
      const res = await request(`${relay.api.url}/mtls/mapping?v=2`, {
        method: 'POST',
        headers: { ...relay.auth(), 'content-type': 'application/json' },
        body: JSON.stringify([{ accountId: 'acct-b', serviceName: 'svc', url: 'https://unmapped.example' }]),
      });
      return { status: res.statusCode, body: await res.body.json() };
    });
    for (const c of checks) expect(c).toEqual({ status: 200, body: [{ accountId: 'acct-b', serviceName: 'svc', url: 'https://unmapped.example', doExist: false }] });
    // Sync forwards are pollable too.
    expect((await stateOf(sync[5]?.jobId as string)).state).toBe('completed');

    // The queue gauges cover every shard: one series per queue and state, the sum over the shards.
    const metrics = await (await request(`${relay.api.url}/metrics`, { headers: relay.auth() })).body.text();
    const completed = [...metrics.matchAll(/^mtls_relay_queue_jobs\{queue="forward",state="completed",service="api"\} (\d+)$/gm)].map((m) => Number(m[1]));
    expect(completed).toHaveLength(1);
    let perShard = 0;
    for (const prefix of layout.prefixes) perShard += await relay.client.zcard(`${prefix}:forward:completed`);
    expect(completed[0]).toBe(perShard);

    const after = await Promise.all(cluster.masters.map((m) => nodeCommandCalls(m.admin)));
    const deltas = after.map((a, i) => a - (before[i] as number));
    const total = deltas.reduce((a, b) => a + b, 0);
    const shares = deltas.map((d) => d / total);
    console.log(`per-master Redis commands for 210 forwards: ${deltas.join(' / ')} (shares ${shares.map((s) => `${(s * 100).toFixed(1)} %`).join(' / ')})`);
    for (const share of shares) expect(share).toBeGreaterThanOrEqual(0.2);
  }, 90_000);

  it('WORKER_SHARDS limits a worker to some shards; the expiry job is scheduled on shard 0 only', async () => {
    const extra = await relay.startWorker({ WORKER_SHARDS: '1' });
    try {
      const workersOf = async (shard: number): Promise<number> => {
        const q = new Queue('forward', { connection: relay.client, prefix: layout.prefixes[shard] as string });
        try {
          // One connection per BullMQ worker of this queue (named after it by BullMQ).
          return (await q.getWorkers()).length;
        } finally {
          await q.close();
        }
      };
      await expect.poll(() => workersOf(1), { timeout: 15_000, interval: 200 }).toBe(2);
      for (const shard of [0, 2, 3, 4, 5]) expect(await workersOf(shard), `shard ${shard}`).toBe(1);
      const schedulers = await Promise.all(layout.prefixes.map((p) => relay.client.exists(`${p}:expiry:repeat`)));
      expect(schedulers).toEqual([1, 0, 0, 0, 0, 0]);
    } finally {
      await extra.stop();
      relay.workers.splice(relay.workers.indexOf(extra), 1);
    }
  }, 60_000);

  it('a worker killed mid-request on the Cluster: a GET is sent again by the other worker, a POST without a key ends delivery_uncertain', async () => {
    // A second relay on the same Cluster (its own prefix, three shards), two workers and short locks.
    const crash = await startRelay({
      redis: cluster.asTestRedis(),
      workers: 2,
      targetCaPem: targetCa,
      env: {
        REDIS_CLUSTER_NODES: cluster.seeds,
        QUEUE_PREFIX: 'crash',
        QUEUE_SHARDS: '3',
        ...SHORT_LOCK_ENV,
      },
    });
    try {
      const send = async (method: 'GET' | 'POST', path: string): Promise<{ status: number; body: string }> => {
        const res = await request(`${crash.api.url}/mtls/account/acct-a`, { method, headers: { ...crash.auth(), 'lp-forward-url': `${target.url}${path}` }, ...(method === 'POST' ? { body: 'x' } : {}) });
        return { status: res.statusCode, body: await res.body.text() };
      };
      const seen = new Set<string>();
      const holder = async (): Promise<{ index: number; jobId: string }> =>
        vi.waitFor(
          () => {
            for (const [index, w] of crash.workers.entries()) {
              const line = w.logs.find((l) => l.msg === 'forward attempt started' && !seen.has(String(l['jobId'])));
              if (line !== undefined) return { index, jobId: String(line['jobId']) };
            }
            throw new Error('no attempt started yet');
          },
          { timeout: 10_000, interval: 20 },
        );
      for (const method of ['GET', 'POST'] as const) {
        const before = target.requests.length;
        const pending = send(method, `/delay/1500?${method}`);
        // Killed once the request has reached the target (mid-request).
        await vi.waitFor(() => expect(target.requests.slice(before).some((r) => r.path.endsWith(`?${method}`))).toBe(true), { timeout: 10_000, interval: 20 });
        const { index, jobId } = await holder();
        seen.add(jobId);
        const worker = crash.workers[index] as (typeof crash.workers)[number];
        worker.proc.kill('SIGKILL');
        crash.workers.splice(index, 1);
        const res = await pending;
        const sent = target.requests.slice(before).filter((r) => r.path.endsWith(`?${method}`)).length;
        if (method === 'GET') {
          expect(res.status).toBe(200);
          expect(sent).toBe(2);
        } else {
          expect(res.status).toBe(502);
          expect(JSON.parse(res.body)).toMatchObject({ code: 'delivery_uncertain', jobId });
          expect(sent).toBe(1);
        }
        for (const w of crash.workers) for (const l of w.logs) if (l.msg === 'forward attempt started') seen.add(String(l['jobId']));
        await crash.startWorker();
      }
    } finally {
      await crash.close();
    }
  }, 90_000);

  it('a replica takes over a master (CLUSTER FAILOVER): no accepted job is lost', async () => {
    const master = cluster.masters[0] as ClusterNode;
    const replica = await cluster.addReplica(master);
    const accepted = await many(60, 12, () => forward('/delay/300', { async: true }));
    expect(accepted.every((a) => a.status === 202)).toBe(true);
    await replica.admin.call('CLUSTER', 'FAILOVER');
    // Every node sees the replica serving the old master's slots.
    for (const node of cluster.masters.slice(1)) {
      await expect.poll(async () => (await shardOwners(node)).filter((p) => p === replica.port).length, { timeout: 20_000, interval: 200 }).toBe(2);
    }
    // New forwards during and after the switch: those the relay accepted run too.
    const during = await many(30, 6, () => forward('/echo', { async: true }));
    const ids = [...accepted, ...during].flatMap((a) => (a.jobId === undefined ? [] : [a.jobId]));
    console.log(`failover: ${during.filter((d) => d.status === 202).length} of ${during.length} forwards during the switch accepted`);
    expect(during.filter((d) => d.status === 202).length).toBeGreaterThanOrEqual(24);
    const finished = await allFinished(ids, 45_000);
    expect(finished.size).toBe(ids.length);
    for (const s of finished.values()) expect(s).toMatchObject({ state: 'completed', response: { status: 200 } });
  }, 90_000);

  it('a stopped master: new jobs go to the other shards; the jobs it had accepted finish once it is back', async () => {
    const stopped = cluster.masters[1] as ClusterNode;
    const owners = await shardOwners(cluster.masters[2]);
    const stoppedShards = owners.flatMap((port, shard) => (port === stopped.port ? [shard] : []));
    expect(stoppedShards).toHaveLength(2);
    // An account whose store documents live on a master that keeps running (a worker that has not cached an
    // account's certificates needs its master to forward for it).
    let account = '';
    for (const candidate of ['acct-a', 'acct-b', 'acct-c', 'acct-d', 'acct-e', 'acct-f']) {
      if ((await cluster.ownerOf(slotOf(accountTag(candidate)), cluster.masters[2])) !== stopped.port) account = candidate;
    }
    // Accepted before the stop, still running at the target (or waiting) when the master stops.
    // One at a time: each is a batch of its own, so the shards take turns and a third land on the stopped master.
    const accepted = await many(18, 1, () => forward('/delay/1500', { async: true, account }));
    expect(accepted.every((a) => a.status === 202)).toBe(true);
    const onStopped = accepted.filter((a) => stoppedShards.includes(shardOfId(a.jobId as string, SHARDS) as number));
    expect(onStopped.length).toBeGreaterThanOrEqual(5);
    stopped.proc.kill('SIGSTOP');
    let resumed = false;
    try {
      const during = await many(40, 4, () => forward('/echo', { account }));
      const ok = during.filter((d) => d.status === 200);
      console.log(`master stopped: ${ok.length} of ${during.length} new forwards answered 200; others: ${JSON.stringify(during.filter((d) => d.status !== 200).map((d) => d.code))}; ${onStopped.length} accepted jobs on its shards`);
      // The first adds on a stopped shard are not confirmed (503, with the job id to poll); the shard is then
      // skipped, and the rest go to the shards whose masters answer.
      for (const d of during.filter((x) => x.status !== 200)) expect([d.status, d.code]).toEqual([503, expect.stringMatching(/^(enqueue_uncertain|queue_unavailable)$/)]);
      expect(ok.length).toBeGreaterThanOrEqual(32);
      for (const d of ok) expect(stoppedShards).not.toContain(shardOfId(d.jobId as string, SHARDS));
      // Still ready: new jobs have somewhere to go (the readiness body names what does not answer).
      const ready = await request(`${relay.api.url}/readyz`);
      const body = (await ready.body.json()) as { checks: Array<{ name: string; detail?: string }> };
      expect(ready.statusCode, JSON.stringify(body)).toBe(200);
      expect(body.checks.find((c) => c.name === 'queues')?.detail).toMatch(/queue shards not answering: \d, \d/);
      stopped.proc.kill('SIGCONT');
      resumed = true;
      const finished = await allFinished(accepted.map((a) => a.jobId as string), 45_000);
      expect(finished.size).toBe(accepted.length);
      for (const s of finished.values()) expect(s).toMatchObject({ state: 'completed', response: { status: 200 } });
    } finally {
      if (!resumed) stopped.proc.kill('SIGCONT');
    }
  }, 120_000);

  it('a killed master: new forwards go to the other shards at once (nothing was sent to it); only the Idempotency-Keys it holds fail', async () => {
    const killed = cluster.masters[2] as ClusterNode;
    const owners = await shardOwners(cluster.masters[1]);
    const killedShards = owners.flatMap((port, shard) => (port === killed.port ? [shard] : []));
    expect(killedShards).toHaveLength(2);
    let account = '';
    for (const candidate of ['acct-a', 'acct-b', 'acct-c', 'acct-d', 'acct-e', 'acct-f']) {
      if ((await cluster.ownerOf(slotOf(accountTag(candidate)), cluster.masters[1])) !== killed.port) account = candidate;
    }
    // Warm: this account's certificates are cached by the worker before the master goes.
    expect((await forward('/echo', { account })).status).toBe(200);
    killed.proc.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const during = await many(30, 3, () => forward('/echo', { account }));
    console.log(`master killed: statuses ${JSON.stringify(during.map((d) => d.status))}`);
    expect(during.map((d) => d.status)).toEqual(during.map(() => 200));
    for (const d of during) expect(killedShards).not.toContain(shardOfId(d.jobId as string, SHARDS));

    // Idempotency-Keys live by account: an account whose keys are on the killed master gets 503 at once; the
    // others' keyed forwards, batched together with them, go through.
    let homeless = '';
    for (let i = 0; homeless === '' && i < 200; i++) {
      if ((await cluster.ownerOf(slotOf(accountTag(`acct-k${i}`)), cluster.masters[1])) === killed.port) homeless = `acct-k${i}`;
    }
    const started = Date.now();
    const mixed = await many(24, 6, (i) => forward('/echo', { account: i % 2 === 0 ? account : homeless, key: `killed-${i}` }));
    expect(mixed.filter((_, i) => i % 2 === 0).map((m) => m.status)).toEqual(Array(12).fill(200));
    expect(mixed.filter((_, i) => i % 2 === 1).map((m) => [m.status, m.code])).toEqual(Array(12).fill([503, 'queue_unavailable']));
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 60_000);
});
