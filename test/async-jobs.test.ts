/**
 * Asynchronous callers and Idempotency-Key: Prefer: respond-async → 202 → poll → replay; wait=N; the same key
 * returns the first result without a second send, 409 while in flight, 422 for a different request.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { mintToken } from '../scripts/lib/tokens.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget, TargetHandler } from '../scripts/lib/mtls-target.ts';
import { Queue } from 'bullmq';
import { forwardIdOf, newBatchId } from '../packages/shared/src/forward-ids.ts';
import { queueOptions } from '../packages/shared/src/jobs.ts';
import { startRelay } from './support/relay.ts';
import { commandCalls, commandsBetween } from '../scripts/bench/redis-stats.ts';
import type { Relay } from './support/relay.ts';

let relay: Relay;
let target: MtlsTarget;
const account = 'async1';

/** /delay/N answers after N ms; everything else at once. The body names the request. */
const handler: TargetHandler = async (req, res) => {
  const m = /^\/delay\/(\d+)/.exec(req.path);
  if (m !== null) await new Promise((r) => setTimeout(r, Number(m[1])).unref());
  res.statusCode = 201;
  res.setHeader('content-type', 'text/plain');
  res.setHeader('x-seen-body', req.body.toString('hex').slice(0, 32));
  res.end(`done ${req.method} ${req.path}`);
};

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  const res = await request(`${relay.api.url}${path}`, { method: method as 'GET', headers: { ...relay.auth(), ...headers }, body: body ?? null });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** A Bearer token of another principal (its own subject), limited to `accounts`. */
const tokenFor = async (subject: string, accounts: string[]): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await mintToken({ secret: relay.env['AUTH_JWT_SECRET'] as string, roles: ['admin'], accounts, subject, ttlSeconds: 600 })}`,
});

const forward = (targetPath: string, headers: Record<string, string> = {}, body?: string, method = 'POST'): Promise<Reply> =>
  call(method, `/mtls/account/${account}`, { 'lp-forward-url': `${target.url}${targetPath}`, ...headers }, body);

beforeAll(async () => {
  const serverCa = await createCA('async-server-ca');
  const clientCa = await createCA('async-client-ca');
  const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false, handler });
  relay = await startRelay({ targetCaPem: serverCa.certPem });
});

afterAll(async () => {
  await relay?.close();
  await target?.close();
});

describe('Prefer: respond-async', () => {
  it('answers 202 with Location at once; polling shows the state; /response replays the target answer verbatim', async () => {
    const accepted = await forward('/delay/300', { prefer: 'respond-async' }, 'async body');
    expect(accepted.status).toBe(202);
    const location = accepted.headers['location'] as string;
    expect(location).toMatch(/^\/mtls\/jobs\/[0-9a-f-]{36}$/);
    const { jobId, state } = JSON.parse(accepted.text) as { jobId: string; state: string };
    expect(location).toBe(`/mtls/jobs/${jobId}`);
    expect(state).toBe('queued');

    const pending = await call('GET', `${location}/response`);
    expect([202, 201]).toContain(pending.status);

    await vi.waitFor(async () => {
      const status = JSON.parse((await call('GET', location)).text) as { state: string };
      expect(status.state).toBe('completed');
    }, { timeout: 10_000, interval: 100 });

    const status = JSON.parse((await call('GET', location)).text) as Record<string, unknown>;
    expect(status).toMatchObject({ id: jobId, state: 'completed', attempts: expect.any(Number), mtls: { used: false }, error: null });
    expect(status['response']).toMatchObject({ status: 201, headers: { 'content-type': 'text/plain' } });
    expect(typeof status['createdAt']).toBe('string');
    expect(typeof status['finishedAt']).toBe('string');

    const replay = await call('GET', `${location}/response`);
    expect(replay.status).toBe(201);
    expect(replay.text).toBe('done POST /delay/300');
    expect(replay.headers['lp-job-id']).toBe(jobId);
    expect(replay.headers['x-seen-body']).toBe(Buffer.from('async body').toString('hex'));
  });

  it('with wait=N answers with the target response when it comes in time', async () => {
    const res = await forward('/delay/50', { prefer: 'respond-async, wait=5' });
    expect(res.status).toBe(201);
    expect(res.text).toBe('done POST /delay/50');
  });

  it('with wait=N answers 202 when the target is slower than N, and the job still completes', async () => {
    const res = await forward('/delay/2500', { prefer: 'respond-async, wait=1' });
    expect(res.status).toBe(202);
    const location = res.headers['location'] as string;
    await vi.waitFor(async () => expect((await call('GET', `${location}/response`)).status).toBe(201), { timeout: 10_000, interval: 200 });
  });

  it('an unknown job id is 404 problem+json', async () => {
    const res = await call('GET', `/mtls/jobs/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(res.text)).toMatchObject({ code: 'not_found' });
  });

  it("another account's job answers exactly like an unknown one (same 404 body), on the status and the response route", async () => {
    const accepted = await forward('/mine', { prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    const { jobId } = JSON.parse(accepted.text) as { jobId: string };
    const stranger = await tokenFor('stranger', ['someone-else']);
    for (const suffix of ['', '/response']) {
      const foreign = await call('GET', `/mtls/jobs/${jobId}${suffix}`, stranger);
      const unknown = await call('GET', `/mtls/jobs/${randomUUID()}${suffix}`, stranger);
      expect(foreign.status).toBe(404);
      expect(unknown.status).toBe(404);
      expect(foreign.headers['content-type']).toBe(unknown.headers['content-type']);
      expect(foreign.text).toBe(unknown.text);
    }
    // The owner still sees it.
    expect((await call('GET', `/mtls/jobs/${jobId}`)).status).toBe(200);
  });

  it('many concurrent synchronous waits are all answered (one subscription per process, no listener per request)', async () => {
    const replies = await Promise.all(Array.from({ length: 150 }, (_, i) => forward(`/n/${i}`, {}, undefined, 'GET')));
    expect(replies.map((r) => r.status)).toEqual(Array(150).fill(201));
    expect(replies.every((r, i) => r.text === `done GET /n/${i}`)).toBe(true);
    expect(relay.api.output.join('')).not.toContain('MaxListenersExceededWarning');
  });
  it('a forward job the worker cannot read (a newer format, or not written by the relay) reads failed with invalid_job, and nothing is sent', async () => {
    target.reset();
    const batchId = newBatchId();
    const id = forwardIdOf(batchId, 0);
    const queue = new Queue('forward', { connection: relay.client, ...queueOptions(relay.prefix) });
    try {
      // A version this worker does not know: its schema refuses the whole batch before anything is opened or sent.
      const entry = { id, accountId: account, serviceName: '', url: `${target.url}/unreadable`, method: 'GET', requireCertificate: false, keyed: false, requestId: id, enqueuedAt: Date.now() };
      await queue.add('forward', { v: 3, forwards: [entry], attemptsBefore: 0, maxAttempts: 3, keepSeconds: 600, retry: false }, { jobId: batchId, attempts: 1 });
    } finally {
      await queue.close();
    }
    const status = await vi.waitFor(async () => {
      const r = JSON.parse((await call('GET', `/mtls/jobs/${id}`)).text) as unknown;
      expect(r).toMatchObject({ state: 'failed' });
      return r;
    }, { timeout: 10_000, interval: 100 });
    expect(status).toMatchObject({ id, state: 'failed', error: { code: 'invalid_job' } });
    expect(target.requests.filter((r) => r.path.startsWith('/unreadable'))).toHaveLength(0);
  });
});

describe('Idempotency-Key', () => {
  it('10 concurrent identical POSTs with one key reach the target once; the others get 409 or the same answer', async () => {
    const key = randomUUID();
    const marker = randomBytes(6).toString('hex');
    target.reset();
    const replies = await Promise.all(Array.from({ length: 10 }, () => forward(`/delay/400?m=${marker}`, { 'idempotency-key': key }, marker)));
    expect(target.requests.filter((r) => r.path.includes(marker))).toHaveLength(1);
    const answered = replies.filter((r) => r.status === 201);
    expect(answered.length).toBeGreaterThanOrEqual(1);
    for (const r of replies) {
      if (r.status === 201) expect(r.text).toBe(`done POST /delay/400?m=${marker}`);
      else {
        expect(r.status).toBe(409);
        expect(JSON.parse(r.text)).toMatchObject({ code: 'idempotency_in_flight' });
      }
    }
    expect(target.requests[0]?.headers['idempotency-key']).toBe(key);
  });

  it('the same key later returns the first result without a second send', async () => {
    const key = randomUUID();
    target.reset();
    const first = await forward('/once', { 'idempotency-key': key }, 'same');
    const second = await forward('/once', { 'idempotency-key': key }, 'same');
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.headers['lp-job-id']).toBe(first.headers['lp-job-id']);
    expect(target.requests).toHaveLength(1);
  });

  it('the same key with a different body is 422 and nothing is sent', async () => {
    const key = randomUUID();
    await forward('/once', { 'idempotency-key': key }, 'body one');
    target.reset();
    const other = await forward('/once', { 'idempotency-key': key }, 'body two');
    expect(other.status).toBe(422);
    expect(JSON.parse(other.text)).toMatchObject({ code: 'idempotency_key_reused' });
    expect(target.requests).toHaveLength(0);
  });

  it('the same key from another caller of the account, or with another LP-authorization-override, is 422 and the first answer is not replayed', async () => {
    const key = randomUUID();
    const first = await forward('/once', { 'idempotency-key': key, 'lp-authorization-override': 'Bearer first-caller' }, 'same');
    expect(first.status).toBe(201);
    target.reset();
    const otherOverride = await forward('/once', { 'idempotency-key': key, 'lp-authorization-override': 'Bearer second-caller' }, 'same');
    expect(otherOverride.status).toBe(422);
    expect(JSON.parse(otherOverride.text)).toMatchObject({ code: 'idempotency_key_reused' });
    const noOverride = await forward('/once', { 'idempotency-key': key }, 'same');
    expect(noOverride.status).toBe(422);
    const otherCaller = await forward('/once', { ...(await tokenFor('second-principal', [account])), 'idempotency-key': key, 'lp-authorization-override': 'Bearer first-caller' }, 'same');
    expect(otherCaller.status).toBe(422);
    expect(JSON.parse(otherCaller.text)).toMatchObject({ code: 'idempotency_key_reused' });
    expect(otherCaller.headers['idempotent-replayed']).toBeUndefined();
    expect(target.requests).toHaveLength(0);
    // The first caller with its own override still gets its answer replayed.
    const again = await forward('/once', { 'idempotency-key': key, 'lp-authorization-override': 'Bearer first-caller' }, 'same');
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
  });

  it('keys are per account: the same key on another account is a new request', async () => {
    const key = randomUUID();
    target.reset();
    await forward('/once', { 'idempotency-key': key }, 'x');
    const res = await call('POST', '/mtls/account/async2', { 'lp-forward-url': `${target.url}/once`, 'idempotency-key': key }, 'x');
    expect(res.status).toBe(201);
    expect(res.headers['idempotent-replayed']).toBeUndefined();
    expect(target.requests).toHaveLength(2);
  });
});

describe('a lone caller', () => {
  it("costs the worker one blocking pop and three scripts per forward: BullMQ's empty re-fetches are gone", async () => {
    // One request at a time: every forward is a batch of one and pays BullMQ's job lifecycle: the api's add, the
    // worker's fetch (with the check that drops the marker of an empty queue, fetch-worker.ts) and its finish. Plain
    // BullMQ also looks for a next job, pops the marker its own fetch left behind and fetches again for nothing: two
    // blocking pops and five scripts per forward.
    const n = 20;
    // Counted once BullMQ has finished each job (its finish script is the worker's last command for a forward).
    const completed = (): Promise<number> => relay.client.zcard(`${relay.prefix}:forward:completed`);
    const finished = async (count: number): Promise<void> => {
      await vi.waitFor(async () => expect(await completed()).toBeGreaterThanOrEqual(count), { timeout: 5_000, interval: 10 });
    };
    const start = await completed();
    await forward('/warm', {}, undefined, 'GET');
    await finished(start + 1);
    const before = await commandCalls(relay.client);
    for (let i = 0; i < n; i++) {
      const res = await forward(`/lone/${i}`, {}, undefined, 'GET');
      expect(res.status).toBe(201);
    }
    await finished(start + 1 + n);
    const { byCommand } = commandsBetween(before, await commandCalls(relay.client));
    // Each forward's record and reply go in one script of the relay's own (recorder.ts): BullMQ's are the rest.
    const bullmq = (byCommand['evalsha'] ?? 0) - n;
    const scripts = bullmq + (byCommand['eval'] ?? 0);
    // Idle workers of the other queues poll every few seconds: a small allowance covers one such round. Fewer is
    // fine: a finish script that finds the next forward already added hands it over without a fetch of its own.
    expect(byCommand['bzpopmin'] ?? 0).toBeGreaterThan(0);
    expect(byCommand['bzpopmin'] ?? 0).toBeLessThanOrEqual(n + 3);
    // Every forward is added and finished: at least two scripts each; at most the add and the worker's three.
    expect(scripts).toBeGreaterThanOrEqual(2 * n);
    expect(scripts).toBeLessThanOrEqual(4 * n + 4);
    expect(bullmq).toBeLessThanOrEqual(3 * n + 4);
  });
});
