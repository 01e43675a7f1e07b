// The sharded bench: one relay (api + worker) with QUEUE_SHARDS over a private 3-master Redis Cluster on this
// machine, synchronous mTLS forwards at one concurrency, then async accepts. Reports, per master, the Redis commands
// (INFO commandstats, scripts' inner commands included) and the CPU of its redis-server (/proc), per forward,
// and what that makes the Cluster's ceiling: masters × 1000 ÷ (Redis CPU ms per forward, all masters together).
// `npm run bench:cluster` (about 30 s; `-- --quick` about 10 s). Writes bench-results/cluster-<N>-shards-latest.md;
// BENCH_SHARDS=1 gives the comparison (one hash-tagged prefix: everything on one master).
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createCA, issueCertificate } from '../lib/pki.ts';
import { startRelay } from '../../test/support/relay.ts';
import { startTestCluster } from '../../test/support/cluster.ts';
import type { ClusterNode } from '../../test/support/cluster.ts';
import { shardLayout } from '../../packages/shared/src/shards.ts';
import { cpuMsOf } from './cpu.ts';
import { commandCalls, commandsBetween } from './redis-stats.ts';
import { runLoad } from './load.ts';

const HERE = fileURLToPath(new URL('./', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const quick = process.argv.includes('--quick');
const DURATION = quick ? 2_000 : 8_000;
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 64);
const SHARDS = Number(process.env['BENCH_SHARDS'] ?? 6);
const MASTERS = 3;
// One shard needs a hash-tagged prefix on a Cluster (the comparison row: everything on one master).
const PREFIX = SHARDS === 1 ? '{mtls-relay}' : 'mtls-relay';

function forkTarget(init: unknown): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(`${HERE}target.ts`, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { type: string; port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`target exited with ${code}`)));
    child.send(init as object);
  });
}

interface NodeSnapshot {
  calls: Map<string, number>;
  cpuMs: number;
}

const snapshot = async (nodes: ClusterNode[]): Promise<NodeSnapshot[]> =>
  Promise.all(nodes.map(async (n) => ({ calls: await commandCalls(n.admin), cpuMs: cpuMsOf(n.proc.pid as number) })));

interface PerMaster {
  port: number;
  commands: number;
  cpuMs: number;
  byCommand: Record<string, number>;
}

function between(nodes: ClusterNode[], before: NodeSnapshot[], after: NodeSnapshot[]): PerMaster[] {
  return nodes.map((n, i) => {
    const between = commandsBetween((before[i] as NodeSnapshot).calls, (after[i] as NodeSnapshot).calls);
    return { port: n.port, commands: between.total, byCommand: between.byCommand, cpuMs: (after[i] as NodeSnapshot).cpuMs - (before[i] as NodeSnapshot).cpuMs };
  });
}

function topCommands(masters: PerMaster[], forwards: number): string {
  const sum = new Map<string, number>();
  for (const m of masters) for (const [name, n] of Object.entries(m.byCommand)) sum.set(name, (sum.get(name) ?? 0) + n);
  return [...sum]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([name, n]) => `${name} ${(n / forwards).toFixed(2)}`)
    .join(', ');
}

function table(title: string, forwards: number, masters: PerMaster[]): string {
  const commands = masters.reduce((a, m) => a + m.commands, 0);
  const cpu = masters.reduce((a, m) => a + m.cpuMs, 0);
  const lines = [
    `### ${title}: ${forwards} forwards`,
    '',
    '| master | commands | share | commands per forward | Redis CPU ms | CPU share | Redis CPU ms per forward |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...masters.map(
      (m) =>
        `| :${m.port} | ${m.commands} | ${((100 * m.commands) / commands).toFixed(1)} % | ${(m.commands / forwards).toFixed(2)} | ${m.cpuMs.toFixed(0)} | ${((100 * m.cpuMs) / cpu).toFixed(1)} % | ${(m.cpuMs / forwards).toFixed(4)} |`,
    ),
    `| all | ${commands} | 100 % | ${(commands / forwards).toFixed(2)} | ${cpu.toFixed(0)} | 100 % | ${(cpu / forwards).toFixed(4)} |`,
    '',
    `Commands per forward, all masters: ${topCommands(masters, forwards)}.`,
    '',
    // The busiest master saturates first: the ceiling is 1000 ÷ its CPU ms per forward (M × 1000 ÷ the total when even).
    `Ceiling of Redis CPU at these figures: 1000 ÷ ${(Math.max(...masters.map((m) => m.cpuMs)) / forwards).toFixed(4)} ms (the busiest master) = about ${Math.round(1000 / (Math.max(...masters.map((m) => m.cpuMs)) / forwards))} forwards/s.`,
    '',
  ];
  return lines.join('\n');
}

const serverCa = await createCA('bench-server-ca');
const clientCa = await createCA('bench-client-ca');
const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const client = await issueCertificate(clientCa, { commonName: 'bench-client', usage: 'client' });
const target = await forkTarget({ certPem: server.certPem, keyPem: server.keyPem, clientCaPem: clientCa.certPem });
const targetUrl = `https://127.0.0.1:${target.port}`;
const cluster = await startTestCluster(MASTERS);
let exitCode = 0;
try {
  const relay = await startRelay({
    redis: cluster.asTestRedis(),
    targetCaPem: serverCa.certPem,
    discardOutput: true,
    env: {
      LOG_LEVEL: 'info',
      REDIS_CLUSTER_NODES: cluster.seeds,
      QUEUE_PREFIX: PREFIX,
      QUEUE_SHARDS: String(SHARDS),
      WORKER_CONCURRENCY: process.env['BENCH_WORKER_CONCURRENCY'] ?? '64',
      SYNC_WAIT_MS: '30000',
      RESULT_TTL_SECONDS: '120',
    },
  });
  try {
    const cert = await relay.store.createCertificate('bench', { name: 'bench', certificate: client.chainPem, privateKey: client.keyPem });
    for (const path of ['/bench', '/async']) await relay.store.createMapping('bench', { serviceName: 'bench', url: `${targetUrl}${path}`, certificateId: cert.id });
    const headers = (path: string): Record<string, string> => ({ ...relay.auth(), 'lp-forward-url': `${targetUrl}${path}`, 'lp-service-name': 'bench' });
    const url = `${relay.api.url}/mtls/account/bench`;

    await runLoad({ url, headers: headers('/bench'), concurrency: CONCURRENCY, durationMs: quick ? 500 : 1_500 });
    const s0 = await snapshot(cluster.masters);
    const sync = await runLoad({ url, headers: headers('/bench'), concurrency: CONCURRENCY, durationMs: DURATION });
    const s1 = await snapshot(cluster.masters);
    const syncMasters = between(cluster.masters, s0, s1);

    const a0 = await snapshot(cluster.masters);
    const accepts = await runLoad({ url, method: 'POST', headers: { ...headers('/async'), prefer: 'respond-async' }, body: 'x', concurrency: CONCURRENCY, durationMs: DURATION });
    // Let the workers finish what was accepted before reading the counters: every shard's wait and active lists empty.
    const layout = shardLayout(PREFIX, SHARDS);
    const drainDeadline = Date.now() + 120_000;
    for (;;) {
      const lengths = await Promise.all(layout.prefixes.flatMap((p) => [relay.client.llen(`${p}:forward:wait`), relay.client.llen(`${p}:forward:active`)]));
      if (lengths.every((n) => n === 0) || Date.now() > drainDeadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const a1 = await snapshot(cluster.masters);
    const asyncMasters = between(cluster.masters, a0, a1);

    const md = [
      `## Sharded relay on a ${MASTERS}-master Redis Cluster (QUEUE_SHARDS=${SHARDS}, concurrency ${CONCURRENCY})`,
      '',
      `Sync: ${sync.rps.toFixed(0)} req/s, p50 ${sync.p50.toFixed(1)} ms, p99 ${sync.p99.toFixed(1)} ms, statuses ${JSON.stringify(sync.statuses)}, errors ${sync.errors}.`,
      `Async accepts: ${accepts.rps.toFixed(0)} jobs/s, statuses ${JSON.stringify(accepts.statuses)}.`,
      '',
      table('Sync forwards', sync.requests, syncMasters),
      table('Async forwards (accepted, then run)', accepts.statuses['202'] ?? accepts.requests, asyncMasters),
      'Everything (load generator, target, api, worker, three redis-servers) runs on one machine; the CPU figures are',
      "each redis-server's user + system time from /proc over the measured interval.",
      '',
    ].join('\n');
    process.stdout.write(md);
    mkdirSync(`${ROOT}bench-results`, { recursive: true });
    writeFileSync(`${ROOT}bench-results/cluster-${SHARDS}-shards-latest.md`, md);
  } finally {
    await relay.close();
  }
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  target.child.kill();
  await cluster.close();
}
process.exit(exitCode);
