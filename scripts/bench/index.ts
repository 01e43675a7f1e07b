// `npm run bench [-- --quick]`: side-by-side throughput, latency and CPU of
//   direct (undici straight to the mTLS target), inline (Express + undici + opossum in the handler),
//   relay-sync (api → BullMQ → worker → target), relay-async (enqueue and completion rates), and nginx
//   (when an nginx binary is present) as an mTLS proxy to the same target,
// all in one run on this machine. Writes JSON and Markdown to bench-results/ (git-ignored).
import { fork, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { createCA, issueCertificate } from '../lib/pki.ts';
import { startRelay } from '../../test/support/relay.ts';
import { cpuMsOf, selfCpuMs, stealSnapshot } from './cpu.ts';
import { percentile, runLoad } from './load.ts';
import type { LoadResult } from './load.ts';
import { startNginx } from './nginx.ts';
import { renderChart } from './chart.ts';
import { batchTotals, commandCalls, commandsBetween } from './redis-stats.ts';
import { renderMarkdown } from './report.ts';
import type { BenchReport, Row } from './report.ts';

const HERE = fileURLToPath(new URL('./', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const quick = process.argv.includes('--quick');
const DURATION = quick ? 700 : 3000;
// The warm-up before each measured case: long enough at c=1 (about 1,000 forwards) for V8 to optimise the code a
// lone caller runs and a busier load does not (a batch of one, the blocking fetch); at 700 ms the relay's c=1 read
// about 15 % more CPU per forward than once warm.
const WARMUP = quick ? 200 : 2000;
const WARMUP_ONCE = quick ? 500 : 3000;
// Each case is measured in ROUNDS slices taking turns with the other paths (see the main loop); before every slice
// after a case's first, a short warm-up brings back its connections and caches after the other paths' turns.
const ROUNDS = quick ? 1 : 3;
const REWARM = 300;
const CONCURRENCY = quick ? [1, 32] : [1, 32, 64, 128];

function forkChild(file: string, init: unknown): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(`${HERE}${file}`, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { type: string; port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)));
    child.send(init as object);
  });
}

function ask<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type === type) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
    child.send({ type });
  });
}

interface TargetStats {
  requests: number;
  connections: number;
  handshakes: number;
}

const serverCa = await createCA('bench-server-ca');
const clientCa = await createCA('bench-client-ca');
const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const client = await issueCertificate(clientCa, { commonName: 'bench-client', usage: 'client' });

const target = await forkChild('target.ts', { certPem: server.certPem, keyPem: server.keyPem, clientCaPem: clientCa.certPem });
const targetUrl = `https://127.0.0.1:${target.port}`;
const inline = await forkChild('inline-proxy.ts', { certPem: client.certPem, keyPem: client.keyPem, caPem: serverCa.certPem });
const relay = await startRelay({
  targetCaPem: serverCa.certPem,
  // The services log at info, as in production; the bench reads and drops their output.
  discardOutput: true,
  env: { LOG_LEVEL: 'info', WORKER_CONCURRENCY: process.env['BENCH_WORKER_CONCURRENCY'] ?? '64', SYNC_WAIT_MS: '30000', RESULT_TTL_SECONDS: '120' },
});
const cert = await relay.store.createCertificate('bench', { name: 'bench', certificate: client.chainPem, privateKey: client.keyPem });
for (const path of ['/bench', '/delay/200', '/async']) {
  await relay.store.createMapping('bench', { serviceName: 'bench', url: `${targetUrl}${path}`, certificateId: cert.id });
}
const nginx = await startNginx({ targetPort: target.port, client, serverCaPem: serverCa.certPem });
const directAgent = new Agent({ connect: { cert: client.certPem, key: client.keyPem, ca: serverCa.certPem }, allowH2: false, keepAliveTimeout: 60_000 });

const relayHeaders = (path: string): Record<string, string> => ({ ...relay.auth(), 'lp-forward-url': `${targetUrl}${path}`, 'lp-service-name': 'bench' });
const scenarios: Array<{ name: string; url: string; headers?: Record<string, string>; dispatcher?: Agent; pids: Record<string, number | undefined> }> = [
  { name: 'direct', url: `${targetUrl}/bench`, dispatcher: directAgent, pids: {} },
  { name: 'inline', url: `http://127.0.0.1:${inline.port}/proxy`, headers: { 'lp-forward-url': `${targetUrl}/bench` }, pids: { inline: inline.child.pid } },
  {
    name: 'relay-sync',
    url: `${relay.api.url}/mtls/account/bench`,
    headers: relayHeaders('/bench'),
    pids: { api: relay.api.proc.pid, worker: relay.workers[0]?.proc.pid, redis: relay.redis.pid() },
  },
];
if (nginx !== undefined) scenarios.push({ name: 'nginx', url: `${nginx.url}/bench`, pids: { nginx: nginx.workerPid() } });

/** A closed-loop load on one scenario (the direct case presents the client certificate through its own Agent). */
function loadOn(s: (typeof scenarios)[number], concurrency: number, durationMs: number): Promise<LoadResult> {
  return runLoad({ url: s.url, headers: s.headers ?? {}, concurrency, durationMs, ...(s.dispatcher === undefined ? {} : { dispatcher: s.dispatcher }) });
}

// Every path is measured in its steady state, as a relay that has been serving for a while runs: before the first
// measured level, each path gets a warm-up at c=32 so that V8 has optimised its code. Without it the lone caller
// (c=1, the first level) ran on code not yet optimised, and the relay's c=1 CPU per forward read about 30 % higher.
for (const s of scenarios) await loadOn(s, 32, WARMUP_ONCE);

const rows: Row[] = [];
const steal0 = stealSnapshot();
/** What one case's slices add up to. */
interface Totals {
  requests: number;
  errors: number;
  statuses: Record<string, number>;
  durationMs: number;
  latencies: number[];
  cpuMs: Record<string, number>;
  targetRequests: number;
  handshakes: number;
  commands: Record<string, number> | undefined;
  forwards: number;
  batches: number;
}
const add = (into: Record<string, number>, from: Record<string, number>): void => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};
for (const c of CONCURRENCY) {
  // Each case is measured in ROUNDS slices, the paths taking turns slice by slice, so that every path samples the same
  // minutes of this shared machine (whose speed drifts by tens of percent from one minute to the next) and the ratios
  // between paths compare like with like; the slices of a case add up to one measurement of DURATION.
  const totals = new Map<string, Totals>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of scenarios) {
      await loadOn(s, c, round === 0 ? WARMUP : REWARM);
      const pids = { ...s.pids, target: target.child.pid };
      const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, pid === undefined ? Number.NaN : cpuMsOf(pid)]));
      const self0 = selfCpuMs();
      const t0 = await ask<TargetStats>(target.child, 'stats');
      const relayCase = s.name.startsWith('relay');
      const redis0 = relayCase ? await commandCalls(relay.client) : undefined;
      const batches0 = relayCase ? await batchTotals(`${relay.api.url}/metrics`, relay.auth()) : undefined;
      const slice: LoadResult = await loadOn(s, c, DURATION / ROUNDS);
      const t1 = await ask<TargetStats>(target.child, 'stats');
      const cpuMs: Record<string, number> = {};
      for (const [k, pid] of Object.entries(pids)) if (pid !== undefined) cpuMs[k] = cpuMsOf(pid) - (cpu0[k] as number);
      cpuMs['loadgen'] = selfCpuMs() - self0;
      const commands = redis0 === undefined ? undefined : commandsBetween(redis0, await commandCalls(relay.client)).byCommand;
      const batches1 = batches0 === undefined ? undefined : await batchTotals(`${relay.api.url}/metrics`, relay.auth());
      const t = totals.get(s.name) ?? {
        requests: 0, errors: 0, statuses: {}, durationMs: 0, latencies: [], cpuMs: {}, targetRequests: 0, handshakes: 0,
        commands: commands === undefined ? undefined : {}, forwards: 0, batches: 0,
      };
      t.requests += slice.requests;
      t.errors += slice.errors;
      add(t.statuses, slice.statuses);
      t.durationMs += slice.durationMs;
      t.latencies.push(...slice.latencies);
      add(t.cpuMs, cpuMs);
      t.targetRequests += t1.requests - t0.requests;
      t.handshakes += t1.handshakes - t0.handshakes;
      if (t.commands !== undefined && commands !== undefined) add(t.commands, commands);
      if (batches0 !== undefined && batches1 !== undefined) {
        t.forwards += batches1.forwards - batches0.forwards;
        t.batches += batches1.batches - batches0.batches;
      }
      totals.set(s.name, t);
    }
  }
  for (const s of scenarios) {
    const t = totals.get(s.name) as Totals;
    const per = Math.max(1, t.requests);
    t.latencies.sort((a, b) => a - b);
    const commandTotal = t.commands === undefined ? undefined : Object.values(t.commands).reduce((a, b) => a + b, 0);
    const row: Row = {
      scenario: s.name,
      concurrency: c,
      requests: t.requests,
      errors: t.errors,
      statuses: t.statuses,
      durationMs: t.durationMs,
      rps: t.requests / (t.durationMs / 1000),
      p50: percentile(t.latencies, 50),
      p99: percentile(t.latencies, 99),
      cpuPerRequest: Object.fromEntries(Object.entries(t.cpuMs).map(([k, ms]) => [k, ms / per])),
      handshakesPerRequest: t.handshakes / Math.max(1, t.targetRequests),
      ...(t.commands === undefined || commandTotal === undefined ? {} : { redisCommandsPerRequest: commandTotal / per, redisCommands: t.commands }),
      ...(t.batches > 0 ? { forwardsPerBatch: t.forwards / t.batches } : {}),
    };
    rows.push(row);
    const redisNote = row.redisCommandsPerRequest === undefined
      ? ''
      : `  redis ${row.redisCommandsPerRequest.toFixed(1)} cmd/req ${(row.cpuPerRequest['redis'] ?? Number.NaN).toFixed(3)} ms/req, ${(row.forwardsPerBatch ?? Number.NaN).toFixed(1)} forwards/batch`;
    console.log(`${s.name.padEnd(11)} c=${String(c).padStart(3)}  ${row.rps.toFixed(0).padStart(6)} req/s  p50 ${row.p50.toFixed(2)} ms  p99 ${row.p99.toFixed(2)} ms  errors ${row.errors}${redisNote}`);
  }
}

// The async path: how fast jobs are accepted, and how fast they are completed.
const asyncConcurrency = 64;
const asyncLoad = (durationMs: number): Promise<LoadResult> =>
  runLoad({ url: `${relay.api.url}/mtls/account/bench`, method: 'POST', headers: { ...relayHeaders('/async'), prefer: 'respond-async' }, body: 'x', concurrency: asyncConcurrency, durationMs });
/** Waits until the target has seen `count` requests more than `from` (the worker has sent every accepted job). */
async function targetSaw(from: TargetStats, count: number, sinceMs: number): Promise<void> {
  for (;;) {
    const s = await ask<TargetStats>(target.child, 'stats');
    if (s.requests - from.requests >= count) return;
    if (performance.now() - sinceMs > 120_000) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
// The same warm-up as every other path (its code — POST bodies, 202 answers, start claims — is run by nothing
// before it), and the backlog it leaves is drained before the measured run starts.
const w0 = await ask<TargetStats>(target.child, 'stats');
const warm = await asyncLoad(WARMUP);
await targetSaw(w0, warm.statuses['202'] ?? 0, performance.now());
const a0 = await ask<TargetStats>(target.child, 'stats');
const asyncRedis0 = await commandCalls(relay.client);
const asyncCpu0 = { api: cpuMsOf(relay.api.proc.pid as number), worker: cpuMsOf(relay.workers[0]?.proc.pid as number), redis: cpuMsOf(relay.redis.pid() as number) };
const enqueue = await asyncLoad(DURATION);
const accepted = enqueue.statuses['202'] ?? 0;
const asyncStart = performance.now() - enqueue.durationMs;
await targetSaw(a0, accepted, asyncStart);
const completionSeconds = (performance.now() - asyncStart) / 1000;
const asyncCommands = commandsBetween(asyncRedis0, await commandCalls(relay.client));
const asyncCpu = {
  api: (cpuMsOf(relay.api.proc.pid as number) - asyncCpu0.api) / Math.max(1, accepted),
  worker: (cpuMsOf(relay.workers[0]?.proc.pid as number) - asyncCpu0.worker) / Math.max(1, accepted),
  redis: (cpuMsOf(relay.redis.pid() as number) - asyncCpu0.redis) / Math.max(1, accepted),
};
const asyncResult = {
  concurrency: asyncConcurrency,
  enqueueRps: enqueue.rps,
  accepted,
  completionRps: accepted / completionSeconds,
  p50: enqueue.p50,
  p99: enqueue.p99,
  redisCommandsPerJob: asyncCommands.total / Math.max(1, accepted),
  cpuPerJob: asyncCpu,
};
console.log(`relay-async c=${asyncConcurrency}  enqueue ${asyncResult.enqueueRps.toFixed(0)} req/s, completion ${asyncResult.completionRps.toFixed(0)} jobs/s, redis ${asyncResult.redisCommandsPerJob.toFixed(1)} cmd/job`);

// A slow target: 200 ms per answer at concurrency 64 → the ideal is 64 / 0.2 = 320 req/s. The warm-up opens the
// 64 connections to the target first, so that the figure is the steady state.
await runLoad({ url: `${relay.api.url}/mtls/account/bench`, headers: relayHeaders('/delay/200'), concurrency: 64, durationMs: quick ? 500 : 1000 });
const slow = await runLoad({ url: `${relay.api.url}/mtls/account/bench`, headers: relayHeaders('/delay/200'), concurrency: 64, durationMs: quick ? 1500 : 6000 });
// The rate is the closed loop's steady state by Little's law, concurrency ÷ mean latency (so the share of the ideal is
// 200 ms ÷ mean latency). Answers ÷ elapsed time, as for the other cases, undercounts here: every loop starts its last
// request before the deadline and the run lasts until the last answer, so up to one 200 ms cycle (3 % of the run)
// is a tail in which most loops have stopped; how much of it falls in depends on where the deadline cuts the cycle.
const slowRps = 64 / (slow.meanMs / 1000);
const slowResult = { concurrency: 64, latencyMs: 200, rps: slowRps, ideal: 64 / 0.2, ratio: slowRps / (64 / 0.2), meanMs: slow.meanMs, p50: slow.p50, p99: slow.p99, answersPerSecond: slow.rps };
console.log(
  `relay-sync to a 200 ms target c=64: mean ${slow.meanMs.toFixed(1)} ms (p50 ${slow.p50.toFixed(1)}, p99 ${slow.p99.toFixed(1)}) → ${slowRps.toFixed(0)} req/s (${(slowResult.ratio * 100).toFixed(1)} % of ideal); answers ÷ elapsed ${slow.rps.toFixed(0)} req/s`,
);

const mem = spawnSync(process.execPath, ['--expose-gc', `${HERE}memory.ts`, quick ? '1000' : '10000', quick ? '50' : '1000'], { cwd: ROOT, encoding: 'utf8' });
const memory = JSON.parse(mem.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
console.log(`memory: ${memory['origins']} origins + ${memory['certificates']} certificates → +${memory['heapAndExternalMB']?.toFixed(1)} MB heap+external, +${memory['rssMB']?.toFixed(1)} MB RSS`);

const steal1 = stealSnapshot();
const report: BenchReport = {
  when: new Date().toISOString(),
  quick,
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memoryGiB: totalmem() / 2 ** 30, node: process.version, stealPercent: (100 * (steal1.steal - steal0.steal)) / Math.max(1, steal1.total - steal0.total) },
  durationMs: DURATION,
  rounds: ROUNDS,
  rows,
  async: asyncResult,
  slowTarget: slowResult,
  memory,
  nginx: nginx !== undefined,
};
mkdirSync(`${ROOT}bench-results`, { recursive: true });
const stamp = report.when.replaceAll(':', '-').slice(0, 19);
writeFileSync(`${ROOT}bench-results/bench-${stamp}.json`, `${JSON.stringify(report, null, 2)}\n`);
const md = renderMarkdown(report);
writeFileSync(`${ROOT}bench-results/bench-${stamp}.md`, md);
writeFileSync(`${ROOT}bench-results/latest.md`, md);
const svg = renderChart(rows, `npm run bench, ${report.when.slice(0, 10)}: ${report.machine.cpus} × ${report.machine.model}, Node ${report.machine.node}${quick ? ' (--quick)' : ''}`);
writeFileSync(`${ROOT}bench-results/bench-${stamp}.svg`, svg);
writeFileSync(`${ROOT}bench-results/latest.svg`, svg);
console.log(`\n${md}`);

await relay.close();
await directAgent.close();
await nginx?.close();
target.child.kill();
inline.child.kill();
process.exit(0);
