/**
 * Crash safety with real processes: a worker killed with SIGKILL mid-request, SIGTERM draining, and an API
 * restart while its job runs. Short locks (JOB_LOCK_MS=2000) so that stalled-job recovery happens in seconds.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget, TargetHandler } from '../scripts/lib/mtls-target.ts';
import { ForwardRecords } from '../packages/shared/src/forward-records.ts';
import { injectBatch } from './support/inject.ts';
import { forwardThrough, SHORT_LOCK_ENV, startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startService } from './support/services.ts';
import type { ServiceProcess } from './support/services.ts';

let relay: Relay;
let target: MtlsTarget;
const account = 'crash1';

/**
 * The first request to a path is held for `hold` ms (?hold=N); later requests to it are answered at once. With
 * ?always=N every request to it is held N ms.
 */
const firstSeen = new Set<string>();
const handler: TargetHandler = async (req, res) => {
  const [path = '', query = ''] = req.path.split('?');
  const params = new URLSearchParams(query);
  const hold = Number(params.get('hold') ?? 0);
  const always = Number(params.get('always') ?? 0);
  if (always > 0) await new Promise((r) => setTimeout(r, always).unref());
  else if (!firstSeen.has(path)) {
    firstSeen.add(path);
    await new Promise((r) => setTimeout(r, hold).unref());
  }
  if (res.destroyed) return;
  res.statusCode = 200;
  res.end(`answer ${req.method} ${path}`);
};

async function forward(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return forwardThrough(relay, account, method, `${target.url}${path}`, headers);
}

/** The worker that logged the start of an attempt for a job forwarding to `path`. */
async function holderOf(path: string): Promise<{ worker: ServiceProcess; jobId: string }> {
  await target.waitForRequests(1);
  const seen = target.requests.findIndex((r) => r.path.startsWith(path));
  expect(seen).toBeGreaterThanOrEqual(0);
  let found: { worker: ServiceProcess; jobId: string } | undefined;
  await vi.waitFor(() => {
    for (const w of relay.workers) {
      const line = w.logs.find((l) => l.msg === 'forward attempt started' && !handled.has(String(l['jobId'])));
      if (line !== undefined) found = { worker: w, jobId: String(line['jobId']) };
    }
    expect(found).toBeDefined();
  });
  handled.add(found!.jobId);
  return found!;
}
const handled = new Set<string>();

beforeAll(async () => {
  const serverCa = await createCA('crash-server-ca');
  const clientCa = await createCA('crash-client-ca');
  const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false, handler });
  relay = await startRelay({
    workers: 2,
    targetCaPem: serverCa.certPem,
    env: { ...SHORT_LOCK_ENV },
  });
});

afterAll(async () => {
  await relay?.close();
  await target?.close();
});

describe('worker killed with SIGKILL mid-request', () => {
  it('a slow GET is completed by the other worker and the caller gets the answer', async () => {
    target.reset();
    const pending = forward('GET', '/slow-get?hold=1500');
    const { worker } = await holderOf('/slow-get');
    worker.proc.kill('SIGKILL');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toBe('answer GET /slow-get');
    expect(target.requests.filter((r) => r.path.startsWith('/slow-get'))).toHaveLength(2);
    relay.workers.splice(relay.workers.indexOf(worker), 1);
    await relay.startWorker();
  });

  it('a POST without Idempotency-Key is never sent twice: the job ends visibly failed with delivery_uncertain', async () => {
    target.reset();
    const pending = forward('POST', '/slow-post?hold=1500');
    const { worker, jobId } = await holderOf('/slow-post');
    worker.proc.kill('SIGKILL');
    const res = await pending;
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'delivery_uncertain', jobId });
    expect(target.requests.filter((r) => r.path.startsWith('/slow-post'))).toHaveLength(1);
    const status = await request(`${relay.api.url}/mtls/jobs/${jobId}`, { headers: relay.auth() });
    expect(JSON.parse(await status.body.text())).toMatchObject({ state: 'failed', error: { code: 'delivery_uncertain' } });
    relay.workers.splice(relay.workers.indexOf(worker), 1);
    await relay.startWorker();
  });
  it('a worker killed with a batch half sent: the POST it had started ends delivery_uncertain, the one still queued in it is sent once', async () => {
    target.reset();
    // One worker that sends one forward at a time, so that the second forward of the batch waits in it, unsent.
    for (const w of [...relay.workers]) {
      await w.stop('SIGTERM');
      relay.workers.splice(relay.workers.indexOf(w), 1);
    }
    const narrow = await relay.startWorker({ WORKER_CONCURRENCY: '1' });
    const tag = randomUUID().slice(0, 8);
    const [first, second] = await injectBatch(relay, account, [
      { method: 'POST', url: `${target.url}/first-${tag}?hold=1500` },
      { method: 'POST', url: `${target.url}/second-${tag}` },
    ]) as [string, string];
    await target.waitForRequests(1);
    expect(target.requests.map((r) => r.path.split('?')[0])).toEqual([`/first-${tag}`]);
    narrow.proc.kill('SIGKILL');
    relay.workers.splice(relay.workers.indexOf(narrow), 1);
    await relay.startWorker();
    const records = new ForwardRecords(relay.client, relay.prefix);
    const outcome = (id: string) =>
      vi.waitFor(async () => {
        const o = await records.outcome(id);
        if (o === null) throw new Error(`${id} not finished yet`);
        return o;
      }, { timeout: 15_000, interval: 100 });
    expect(await outcome(first)).toMatchObject({ ok: false, error: { code: 'delivery_uncertain' } });
    expect(await outcome(second)).toMatchObject({ ok: true, result: { status: 200 } });
    expect(target.requests.map((r) => r.path.split('?')[0]).sort()).toEqual([`/first-${tag}`, `/second-${tag}`]);
    await relay.startWorker();
  });

  it('a GET whose job loses both its runs mid-request (stalled twice) ends delivery_uncertain, not internal: the caller gets 502', async () => {
    target.reset();
    const sent = (): number => target.requests.filter((r) => r.path.startsWith('/stalled-twice')).length;
    // The forwards of the tests before have been attempted too: holderOf must find this one's.
    for (const w of relay.workers) for (const l of w.logs) if (l.msg === 'forward attempt started') handled.add(String(l['jobId']));
    const pending = forward('GET', '/stalled-twice?always=20000');
    const { worker: first, jobId } = await holderOf('/stalled-twice');
    first.proc.kill('SIGKILL');
    relay.workers.splice(relay.workers.indexOf(first), 1);
    // The other worker takes the job over once its lock has expired, and sends the GET again (safe to repeat).
    await vi.waitFor(() => expect(sent()).toBe(2), { timeout: 15_000, interval: 100 });
    for (const w of relay.workers.splice(0)) w.proc.kill('SIGKILL');
    // A fresh worker finds the job stalled a second time: BullMQ (maxStalledCount 1) fails it, unrecorded.
    await relay.startWorker();
    const res = await pending;
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'delivery_uncertain', jobId });
    const status = await request(`${relay.api.url}/mtls/jobs/${jobId}`, { headers: relay.auth() });
    expect(JSON.parse(await status.body.text())).toMatchObject({ state: 'failed', error: { code: 'delivery_uncertain' } });
    expect(sent()).toBe(2);
    await relay.startWorker();
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM lets the job in flight finish: the caller gets the answer and the worker exits 0', async () => {
    target.reset();
    const pending = forward('POST', '/drain?hold=1000');
    const { worker } = await holderOf('/drain');
    const exited = worker.stop('SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await exited).toBe(0);
    expect(target.requests.filter((r) => r.path.startsWith('/drain'))).toHaveLength(1);
    relay.workers.splice(relay.workers.indexOf(worker), 1);
    await relay.startWorker();
  });

  it('SIGTERM on the API lets a request in flight finish first: the caller gets the answer and the API exits 0', async () => {
    target.reset();
    const api = relay.api;
    const pending = forward('POST', '/api-drain?hold=1000');
    await holderOf('/api-drain');
    const exited = api.stop('SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toBe('answer POST /api-drain');
    expect(await exited).toBe(0);
    relay.api = await startService('api', relay.env);
  });

  it('when the API dies while a caller waits, the job keeps running and can be polled from a new API process', async () => {
    target.reset();
    const pending = forward('POST', '/api-restart?hold=1500').catch(() => null);
    const { jobId } = await holderOf('/api-restart');
    relay.api.proc.kill('SIGKILL');
    expect(await pending).toBeNull();
    const api2 = await startService('api', relay.env);
    try {
      await vi.waitFor(async () => {
        const res = await request(`${api2.url}/mtls/jobs/${jobId}/response`, { headers: relay.auth() });
        expect(res.statusCode).toBe(200);
        expect(await res.body.text()).toBe('answer POST /api-restart');
      }, { timeout: 10_000, interval: 200 });
    } finally {
      relay.api = api2;
    }
  });
});
