/**
 * Retries in one layer (method-aware, Retry-After honoured) and one circuit breaker per target origin.
 * One worker, so the breaker the tests reason about is the only one.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget, TargetHandler } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

let relay: Relay;
let target: MtlsTarget;
let hostA: MtlsTarget;
const extraTargets: MtlsTarget[] = [];
let server: Issued;
let clientCaPem: string;
const account = 'retry1';
const RESET_MS = 1500;

/** Answers per path: each path has a script of statuses, consumed one per request; the last repeats. */
const scripts = new Map<string, Array<{ status: number; headers?: Record<string, string>; delayMs?: number }>>();
const arrivals = new Map<string, number[]>();
const scripted: TargetHandler = async (req, res) => {
  const path = req.path.split('?')[0] ?? req.path;
  arrivals.set(path, [...(arrivals.get(path) ?? []), Date.now()]);
  const script = scripts.get(path) ?? [{ status: 200 }];
  const step = script.length > 1 ? script.shift()! : script[0]!;
  if (step.delayMs !== undefined) await new Promise((r) => setTimeout(r, step.delayMs).unref());
  res.statusCode = step.status;
  for (const [k, v] of Object.entries(step.headers ?? {})) res.setHeader(k, v);
  res.end(`status ${step.status}`);
};

async function forward(url: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const res = await request(`${relay.api.url}/mtls/account/${account}`, {
    method: method as 'GET',
    headers: { ...relay.auth(), 'lp-forward-url': url, ...headers },
    body: method === 'GET' || method === 'DELETE' ? null : 'payload',
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

beforeAll(async () => {
  const serverCa = await createCA('retry-server-ca');
  clientCaPem = (await createCA('retry-client-ca')).certPem;
  server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  target = await startMtlsTarget({ server, clientCa: clientCaPem, requireClientCert: false, handler: scripted });
  hostA = await startMtlsTarget({ server, clientCa: clientCaPem, requireClientCert: false, handler: scripted });
  relay = await startRelay({
    targetCaPem: serverCa.certPem,
    env: {
      FORWARD_ATTEMPTS: '3',
      RETRY_BASE_DELAY_MS: '50',
      BREAKER_VOLUME_THRESHOLD: '3',
      BREAKER_ERROR_PERCENT: '50',
      BREAKER_RESET_MS: String(RESET_MS),
      HEADERS_TIMEOUT_MS: '1000',
      TARGET_TIMEOUT_MS: '1500',
    },
  });
});

afterAll(async () => {
  await relay?.close();
  await target?.close();
  await hostA?.close();
  await Promise.all(extraTargets.map((t) => t.close()));
});

const unique = (): string => `/${randomUUID()}`;

/** A target on a port (origin) of its own, so that one test's failures never trip another test's breaker. */
async function freshOrigin(): Promise<string> {
  const t = await startMtlsTarget({ server, clientCa: clientCaPem, requireClientCert: false, handler: scripted });
  extraTargets.push(t);
  return t.url;
}

describe('retries', () => {
  it('a GET to a target that answers 503 twice and then 200 gets 200; the target saw 3 requests', async () => {
    const path = unique();
    scripts.set(path, [{ status: 503 }, { status: 503 }, { status: 200 }]);
    const res = await forward(`${await freshOrigin()}${path}`);
    expect(res.status).toBe(200);
    expect(arrivals.get(path)).toHaveLength(3);
    // The attempt log says what happened: the target answered 503 (not that it could not be reached).
    const jobId = String(res.headers['lp-job-id']);
    const failed = await vi.waitFor(() => {
      const lines = relay.workers.flatMap((w) => w.logs).filter((l) => l.msg === 'forward attempt failed' && l['jobId'] === jobId);
      expect(lines).toHaveLength(2);
      return lines;
    }, { timeout: 5_000, interval: 50 });
    expect(failed.map((l) => [l['code'], l['targetStatus'], l['willRetry']])).toEqual([['target_status', 503, true], ['target_status', 503, true]]);
  });

  it('a POST without Idempotency-Key to the same kind of target gets the 503 relayed; the target saw 1 request', async () => {
    const path = unique();
    scripts.set(path, [{ status: 503 }, { status: 503 }, { status: 200 }]);
    const res = await forward(`${await freshOrigin()}${path}`, 'POST');
    expect(res.status).toBe(503);
    expect(res.body).toBe('status 503');
    expect(arrivals.get(path)).toHaveLength(1);
  });

  it('a POST with an Idempotency-Key is retried like a GET', async () => {
    const path = unique();
    scripts.set(path, [{ status: 502 }, { status: 200 }]);
    const res = await forward(`${await freshOrigin()}${path}`, 'POST', { 'idempotency-key': randomUUID() });
    expect(res.status).toBe(200);
    expect(arrivals.get(path)).toHaveLength(2);
  });

  it('honours Retry-After: 2 (at least 2 s between the attempts)', async () => {
    const path = unique();
    scripts.set(path, [{ status: 503, headers: { 'retry-after': '2' } }, { status: 200 }]);
    const res = await forward(`${await freshOrigin()}${path}`, 'PUT');
    expect(res.status).toBe(200);
    const [first, second] = arrivals.get(path) ?? [];
    expect(second! - first!).toBeGreaterThanOrEqual(2000);
  });

  it.each([400, 404, 409])('relays an upstream %i verbatim and does not retry it', async (code) => {
    const path = unique();
    scripts.set(path, [{ status: code }]);
    const res = await forward(`${await freshOrigin()}${path}`);
    expect(res.status).toBe(code);
    expect(res.body).toBe(`status ${code}`);
    expect(arrivals.get(path)).toHaveLength(1);
  });

  it('after the last attempt the caller gets the last response (GET to a target that always answers 504)', async () => {
    const path = unique();
    scripts.set(path, [{ status: 504 }]);
    const res = await forward(`${await freshOrigin()}${path}`);
    expect(res.status).toBe(504);
    expect(res.body).toBe('status 504');
    expect(arrivals.get(path)).toHaveLength(3);
  });

  it("a request that times out does not abort another request in flight to the same origin", async () => {
    const slow = unique();
    const ok = unique();
    scripts.set(slow, [{ status: 200, delayMs: 5000 }]);
    scripts.set(ok, [{ status: 200, delayMs: 700 }]);
    const origin = await freshOrigin();
    const [timedOut, fine] = await Promise.all([forward(`${origin}${slow}`, 'POST'), forward(`${origin}${ok}`, 'POST')]);
    expect(timedOut.status).toBe(504);
    expect(fine.status).toBe(200);
  });
});

describe('circuit breaker per origin', () => {
  it('opens after repeated failures of host A: 503 with Retry-After and Proxy-Status, no call to A, host B unaffected; one trial after the reset timeout', async () => {
    const path = unique();
    scripts.set(path, [{ status: 502 }]);
    for (let i = 0; i < 3; i++) expect((await forward(`${hostA.url}${path}`, 'POST')).status).toBe(502);
    const seenBefore = hostA.requests.length;
    const started = performance.now();
    const open = await forward(`${hostA.url}${path}`, 'POST');
    const openMs = performance.now() - started;
    expect(open.status).toBe(503);
    expect(JSON.parse(open.body)).toMatchObject({ code: 'circuit_open' });
    expect(Number(open.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(open.headers['proxy-status']).toMatch(/error=destination_unavailable/);
    expect(hostA.requests.length).toBe(seenBefore);
    console.log(`[figure] forward answered 503 circuit_open in ${openMs.toFixed(1)} ms (round trip through api, queue and worker)`);

    // Host B (same relay, other origin) is unaffected.
    expect((await forward(`${target.url}${unique()}`, 'POST')).status).toBe(200);

    // After the reset timeout exactly one trial goes through; it succeeds and the breaker closes.
    scripts.set(path, [{ status: 200, delayMs: 400 }]);
    const openedAt = Date.now();
    await vi.waitFor(() => expect(Date.now() - openedAt).toBeGreaterThan(RESET_MS + 200), { timeout: RESET_MS + 2000, interval: 100 });
    const before = hostA.requests.length;
    const trio = await Promise.all([0, 1, 2].map(() => forward(`${hostA.url}${path}`, 'POST')));
    expect(hostA.requests.length - before).toBe(1);
    expect(trio.map((r) => r.status).sort()).toEqual([200, 503, 503]);
    expect((await forward(`${hostA.url}${path}`, 'POST')).status).toBe(200);
  });

  it('4xx answers do not count against the origin: ten 404s in a row all reach the target', async () => {
    const origin = await freshOrigin();
    const path = unique();
    scripts.set(path, [{ status: 404 }]);
    for (let i = 0; i < 10; i++) expect((await forward(`${origin}${path}`, 'POST')).status).toBe(404);
    expect(arrivals.get(path)).toHaveLength(10);
  });

  it('a failed trial opens the breaker again at once', async () => {
    const path = unique();
    scripts.set(path, [{ status: 503 }]);
    const url = `${await freshOrigin()}${path}`;
    // Fill the window with failures until it opens.
    await vi.waitFor(async () => expect((await forward(url, 'POST')).headers['content-type']).toBe('application/problem+json'), { timeout: 5000, interval: 0 });
    const opened = await forward(url, 'POST');
    expect(JSON.parse(opened.body)).toMatchObject({ code: 'circuit_open' });
    const seen = (): number => extraTargets.reduce((n, t) => n + t.requests.filter((r) => r.path === path).length, 0);
    const openedAt = Date.now();
    await vi.waitFor(() => expect(Date.now() - openedAt).toBeGreaterThan(RESET_MS + 200), { timeout: RESET_MS + 2000, interval: 100 });
    const before = seen();
    const trial = await forward(url, 'POST');
    expect(trial.status).toBe(503);
    expect(trial.body).toBe('status 503');
    const after = await forward(url, 'POST');
    expect(JSON.parse(after.body)).toMatchObject({ code: 'circuit_open' });
    expect(seen() - before).toBe(1);
  });
});
