// `npm run soak [-- --seconds N]`: a bounded fault soak on loopback (about 2.5 minutes with the default 120 s of
// load). It starts a private Redis (AOF, fsync always, so a restart keeps every accepted job), a plain-HTTP target
// that counts deliveries per request id, the api and 3 workers, then drives ~100 requests/s (GET, POST with an
// Idempotency-Key, POST without one; synchronous and `Prefer: respond-async`) while it SIGKILLs a worker every
// ~10 s (and starts a new one), SIGKILLs the api once, restarts Redis once and pauses it (SIGSTOP) for 7 s.
// Then it reconciles: every accepted job reached a terminal state, no POST without a key was delivered twice, no
// request answered 503 queue_unavailable reached the target, and a key whose first request got that 503 can be
// used again. It prints a table and exits 1 on any violation, naming the issue-14 row a violation belongs to.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { startTestRedis } from '../test/support/redis.ts';
import { startRelay } from '../test/support/relay.ts';
import { startService } from '../test/support/services.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '120' }, rate: { type: 'string', default: '100' } } });
const LOAD_MS = Number(values.seconds) * 1000;
const RATE = Number(values.rate);
const PAUSE_MS = 7_000;
const ACCOUNT = 'soak';
const started = Date.now();
const log = (msg: string): void => console.log(`[soak ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);

// --- the target: counts deliveries per request id (the last path segment)
const deliveries = new Map<string, number>();
const target = createServer((req: IncomingMessage, res: ServerResponse) => {
  const id = (req.url ?? '').split('?')[0]?.split('/').pop() ?? '';
  req.resume();
  req.on('end', () => {
    deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
    setTimeout(() => res.end(`ok ${id}`), Math.floor(Math.random() * 20)).unref();
  });
});
await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
const targetPort = (target.address() as { port: number }).port;

// --- the relay: short locks and waits so that recovery happens within the soak
const redis = await startTestRedis({ appendonly: true });
const relay = await startRelay({
  redis,
  workers: 3,
  discardOutput: true,
  env: {
    ALLOW_HTTP_TARGETS: 'true',
    TARGET_ALLOWLIST: '127.0.0.1',
    WORKER_CONCURRENCY: '32',
    JOB_LOCK_MS: '5000',
    SYNC_WAIT_MS: '10000',
    TARGET_TIMEOUT_MS: '3000',
    CONNECT_TIMEOUT_MS: '1000',
    HEADERS_TIMEOUT_MS: '2500',
    BODY_TIMEOUT_MS: '2500',
    FORWARD_ATTEMPTS: '3',
  },
});
log(`relay up: api ${relay.api.url}, 3 workers, Redis ${redis.url} (pid ${redis.pid()}), target http://127.0.0.1:${targetPort}`);

// --- the load
type Kind = 'GET' | 'POST+key' | 'POST';
interface Sent {
  id: string;
  kind: Kind;
  async: boolean;
  status: number; // 0: no answer (connection lost)
  code: string | undefined;
  jobId: string | undefined;
  final: string | undefined; // terminal job state once known
  t: number; // seconds since the soak started, when sent
}
const sent: Sent[] = [];
const dispatcher = new Agent({ connections: 512, headersTimeout: 60_000, bodyTimeout: 60_000, keepAliveTimeout: 4_000 });
let inFlight = 0;

async function send(id: string, kind: Kind, isAsync: boolean): Promise<Sent> {
  const headers: Record<string, string> = { ...relay.auth(), 'lp-forward-url': `http://127.0.0.1:${targetPort}/soak/${id}` };
  if (kind === 'POST+key') headers['idempotency-key'] = id;
  if (isAsync) headers['prefer'] = 'respond-async';
  const s: Sent = { id, kind, async: isAsync, status: 0, code: undefined, jobId: undefined, final: undefined, t: (Date.now() - started) / 1000 };
  try {
    const res = await request(`${relay.api.url}/mtls/account/${ACCOUNT}`, {
      method: kind === 'GET' ? 'GET' : 'POST',
      headers,
      body: kind === 'GET' ? null : `body ${id}`,
      dispatcher,
    });
    const text = await res.body.text();
    s.status = res.statusCode;
    const jobId = res.headers['lp-job-id'];
    s.jobId = typeof jobId === 'string' ? jobId : undefined;
    if (String(res.headers['content-type']).startsWith('application/problem+json')) s.code = (JSON.parse(text) as { code?: string }).code;
    // Answers that end the job: the target's, or a relay error other than "still running".
    if (s.jobId !== undefined && s.status !== 202 && s.code !== 'wait_timeout') s.final = s.code === undefined ? 'completed' : 'failed';
  } catch {
    s.status = 0;
  }
  return s;
}

let n = 0;
const pending = new Set<Promise<void>>();
const loadDone = (async () => {
  const kinds: Kind[] = ['GET', 'POST+key', 'POST'];
  const t0 = Date.now();
  while (Date.now() - t0 < LOAD_MS) {
    const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
    while (n < due) {
      const i = n++;
      const p = (async () => {
        inFlight++;
        sent.push(await send(`r${i}`, kinds[i % 3] as Kind, i % 2 === 1));
        inFlight--;
      })();
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await sleep(10);
  }
  await Promise.all(pending);
})();

// --- the faults, one at a time so that a restarting process never meets a stopped Redis
let workerKills = 0;
async function killAndRestartWorker(): Promise<void> {
  const live = relay.workers.filter((w) => w.proc.exitCode === null && w.proc.signalCode === null);
  const victim = live[workerKills % live.length];
  if (victim === undefined) return;
  workerKills++;
  victim.proc.kill('SIGKILL');
  await relay.startWorker();
  log(`worker ${victim.proc.pid} SIGKILLed, a new one started (in flight: ${inFlight})`);
}
async function killAndRestartApi(): Promise<void> {
  relay.api.proc.kill('SIGKILL');
  relay.api = await startService('api', relay.env, { discardOutput: 'after-start' });
  log(`api SIGKILLed and restarted at ${relay.api.url}`);
}
async function restartRedis(): Promise<void> {
  await redis.stop();
  await redis.start();
  log(`Redis restarted (SIGTERM, AOF kept), pid ${redis.pid()}`);
}
async function pauseRedis(): Promise<void> {
  const pid = redis.pid() as number;
  process.kill(pid, 'SIGSTOP');
  log(`Redis paused (SIGSTOP) for ${PAUSE_MS / 1000} s`);
  await sleep(PAUSE_MS);
  process.kill(pid, 'SIGCONT');
  log('Redis resumed (SIGCONT)');
}
const at = (fraction: number): number => Math.round((LOAD_MS * fraction) / 1000);
const special = new Map<number, () => Promise<void>>([[at(0.3), killAndRestartApi], [at(0.55), restartRedis], [at(0.75), pauseRedis]]);
const plan: Array<[number, () => Promise<void>]> = [];
for (let t = 10; t < LOAD_MS / 1000; t += 10) {
  const fault = [...special].find(([s]) => s >= t - 5 && s < t + 5);
  plan.push(fault === undefined ? [t, killAndRestartWorker] : fault);
}
for (const [t, fault] of plan) {
  const wait = started + t * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  log(`fault: ${fault.name}`);
  await fault().catch((err: unknown) => log(`fault ${fault.name} failed: ${(err as Error).message}`));
}
await loadDone;
log(`load done: ${sent.length} requests; reconciling`);

// --- reconcile: poll every accepted job that the answer did not end
const deadline = Date.now() + 120_000;
async function stateOf(jobId: string): Promise<string> {
  const res = await request(`${relay.api.url}/mtls/jobs/${jobId}`, { headers: relay.auth(), dispatcher }).catch(() => undefined);
  if (res === undefined) return 'unreachable';
  const body = (await res.body.json().catch(() => ({}))) as { state?: string; error?: { code?: string } };
  if (res.statusCode === 404) return 'missing';
  return body.state === 'failed' ? `failed:${body.error?.code ?? '?'}` : (body.state ?? `http ${res.statusCode}`);
}
const open = (): Sent[] => sent.filter((s) => s.jobId !== undefined && (s.final === undefined || !/^(completed|failed)/.test(s.final)));
while (open().length > 0 && Date.now() < deadline) {
  const batch = open();
  for (let i = 0; i < batch.length; i += 32) {
    await Promise.all(batch.slice(i, i + 32).map(async (s) => {
      s.final = await stateOf(s.jobId as string);
    }));
  }
  if (open().length > 0) await sleep(1_000);
}

// What the load itself delivered, before the key retries below add deliveries of their own.
await sleep(2_000); // late deliveries of requests that were still on their way
const loadDeliveries = new Map(deliveries);

// A key whose first request was answered 503 queue_unavailable must be usable again, as a client retries it: a
// final answer, not 409 forever. Every accepted job has ended by now, so 15 s of 409 means the key is wedged.
const wedged: string[] = [];
const retryUntil = Date.now() + 15_000;
const toRetry = sent.filter((x) => x.kind === 'POST+key' && x.code === 'queue_unavailable');
for (let i = 0; i < toRetry.length; i += 32) {
  await Promise.all(toRetry.slice(i, i + 32).map(async (s) => {
    let answer = await send(s.id, 'POST+key', false);
    while (answer.code === 'idempotency_in_flight' && Date.now() < retryUntil) {
      await sleep(1_000);
      answer = await send(s.id, 'POST+key', false);
    }
    if (answer.code === 'idempotency_in_flight') wedged.push(s.id);
  }));
}

// --- the table
const count = (f: (s: Sent) => boolean): number => sent.filter(f).length;
const rows: Array<[string, string | number]> = [
  ['requests sent', sent.length],
  ['  answered with a job id (accepted)', count((s) => s.jobId !== undefined)],
  ['  answered 503 queue_unavailable', count((s) => s.code === 'queue_unavailable')],
  ['  no answer (connection lost: api killed)', count((s) => s.status === 0)],
  ['  other answers without a job id', count((s) => s.status !== 0 && s.jobId === undefined && s.code !== 'queue_unavailable')],
  ['accepted jobs completed', count((s) => s.final === 'completed')],
  ['accepted jobs failed', count((s) => s.final?.startsWith('failed') === true)],
  ['  of which delivery_uncertain (a worker died mid-request; row 3 when none did)', count((s) => s.final === 'failed:delivery_uncertain' || s.code === 'delivery_uncertain')],
  ['fault events: worker SIGKILLs / api SIGKILL / Redis restart / Redis pause', `${workerKills} / 1 / 1 / ${PAUSE_MS / 1000} s`],
];
const codes = new Map<string, number>();
for (const s of sent) codes.set(`${s.status} ${s.code ?? ''}`.trim(), (codes.get(`${s.status} ${s.code ?? ''}`.trim()) ?? 0) + 1);
const delivered = (s: Sent): number => loadDeliveries.get(s.id) ?? 0;
const violations: Array<[string, Sent[] | string[]]> = [
  ['accepted job not in a terminal state (row 3 when stuck after the pause)', sent.filter((s) => s.jobId !== undefined && !/^(completed|failed)/.test(s.final ?? ''))],
  ['POST without Idempotency-Key delivered more than once', sent.filter((s) => s.kind === 'POST' && delivered(s) > 1)],
  ['answered 503 queue_unavailable, yet delivered to the target (row 1)', sent.filter((s) => s.code === 'queue_unavailable' && delivered(s) > 0)],
  ['Idempotency-Key still 409 in flight after its first request got 503 (row 2)', wedged],
  ['key retried after its 503: the request reached the target twice (row 2)', toRetry.filter((s) => (deliveries.get(s.id) ?? 0) > 1)],
];
const info: Array<[string, number]> = [
  ['GET delivered more than once (allowed after a worker death; row 3 after a pause)', count((s) => s.kind === 'GET' && delivered(s) > 1)],
  ['POST with Idempotency-Key delivered more than once (allowed after a worker death)', count((s) => s.kind === 'POST+key' && delivered(s) > 1)],
];
const width = 84;
console.log(`\n${'reconciliation'.padEnd(width)}value`);
for (const [k, v] of rows) console.log(`${k.padEnd(width)}${v}`);
console.log(`\n${'answers (status code)'.padEnd(width)}count`);
for (const [k, v] of [...codes].sort((a, b) => b[1] - a[1])) console.log(`${('  ' + k).padEnd(width)}${v}`);
console.log(`\n${'information'.padEnd(width)}count`);
for (const [k, v] of info) console.log(`${k.padEnd(width)}${v}`);
console.log(`\n${'checks'.padEnd(width)}violations`);
for (const [k, list] of violations) {
  console.log(`${k.padEnd(width)}${list.length === 0 ? 'none' : list.length}`);
  for (const s of list.slice(0, 5)) {
    console.log(typeof s === 'string' ? `    key ${s}` : `    ${s.id} ${s.kind}${s.async ? ' async' : ''} sent at ${s.t.toFixed(1)} s: answered ${s.status} ${s.code ?? ''}, job ${s.jobId ?? '-'} ${s.final ?? ''}, delivered ${delivered(s)}×`);
  }
  const times = list.flatMap((s) => (typeof s === 'string' ? [] : [s.t]));
  if (times.length > 5) console.log(`    … sent between ${Math.min(...times).toFixed(1)} s and ${Math.max(...times).toFixed(1)} s`);
}

await dispatcher.close();
let atRest = 'clean';
await relay.close();
// Stopping the private Redis scans it for secrets in clear first (test/support/at-rest.ts).
await redis.close().catch((err: unknown) => {
  atRest = (err as Error).message;
});
target.close();
console.log(`${'secrets at rest in Redis'.padEnd(width)}${atRest === 'clean' ? 'none' : atRest}`);
const failed = violations.some(([, list]) => list.length > 0) || atRest !== 'clean';
console.log(`\nsoak ${failed ? 'FAILED' : 'passed'} in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(failed ? 1 : 0);
