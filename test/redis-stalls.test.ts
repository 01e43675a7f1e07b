/**
 * Honest answers when Redis stalls (SIGSTOP on a private redis-server) and when a reply is lost:
 * - an enqueue that Redis does not confirm is withdrawn; 503 queue_unavailable only when nothing will run,
 *   otherwise 503 enqueue_uncertain with a Location whose answer becomes definite once Redis resumes;
 * - an Idempotency-Key whose claim timed out can be used again, and the request is sent once;
 * - a pause longer than the job lock, with every worker alive, sends nothing twice and ends nothing as
 *   delivery_uncertain;
 * - a synchronous caller whose reply message is lost gets the recorded outcome, not a wait timeout.
 * Short timeouts (REDIS_COMMAND_TIMEOUT_MS=1000, JOB_LOCK_MS=2000) keep each case within seconds.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { recordField } from '../packages/shared/src/forward-records.ts';
import { createKeyRing } from '../packages/shared/src/crypto.ts';
import { forwardBatchSchema } from '../packages/shared/src/jobs.ts';
import { sealResponse } from '../packages/shared/src/sealed-parts.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget, TargetHandler } from '../scripts/lib/mtls-target.ts';
import { startTestRedis } from './support/redis.ts';
import type { TestRedis } from './support/redis.ts';
import { forwardThrough, SHORT_LOCK_ENV, startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

const external = process.env['REDIS_URL'] !== undefined && process.env['REDIS_URL'] !== '';
let redis: TestRedis;
let relay: Relay;
let target: MtlsTarget;
const account = 'stall1';

/** ?hold=N: the target answers after N ms. */
const handler: TargetHandler = async (req, res) => {
  const hold = Number(new URLSearchParams(req.path.split('?')[1] ?? '').get('hold') ?? 0);
  if (hold > 0) await new Promise((r) => setTimeout(r, hold).unref());
  if (res.destroyed) return;
  res.statusCode = 200;
  res.end(`answer ${req.method} ${req.path.split('?')[0]}`);
};

const seen = (path: string): number => target.requests.filter((r) => r.path.split('?')[0] === path).length;

async function forward(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return forwardThrough(relay, account, method, `${target.url}${path}`, headers);
}

/** SIGSTOP the Redis server for `ms`, then SIGCONT (resolves at once; the returned promise resolves on resume). */
function pauseRedis(ms: number): Promise<void> {
  const pid = redis.pid() as number;
  process.kill(pid, 'SIGSTOP');
  return new Promise((resolve) => {
    setTimeout(() => {
      process.kill(pid, 'SIGCONT');
      resolve();
    }, ms);
  });
}

async function poll(location: string): Promise<{ state: string; error: { code: string } | null }> {
  const res = await request(`${relay.api.url}${location}`, { headers: relay.auth() });
  return (await res.body.json()) as { state: string; error: { code: string } | null };
}

describe.skipIf(external)('Redis stalls and lost replies (private Redis under SIGSTOP)', () => {
  beforeAll(async () => {
    redis = await startTestRedis();
    const serverCa = await createCA('stall-server-ca');
    const clientCa = await createCA('stall-client-ca');
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false, handler });
    relay = await startRelay({
      redis,
      workers: 2,
      targetCaPem: serverCa.certPem,
      env: { ...SHORT_LOCK_ENV, REDIS_COMMAND_TIMEOUT_MS: '1000' },
    });
  });

  afterAll(async () => {
    // Never leave the server stopped: the relay's shutdown and the at-rest scan need it.
    try {
      process.kill(redis.pid() as number, 'SIGCONT');
    } catch {
      // not running
    }
    await relay?.close();
    await redis?.close();
    await target?.close();
  });

  it('a stall the withdrawal outlasts: 503 queue_unavailable, and the request never reaches the target', async () => {
    const path = `/short-${randomUUID()}`;
    const resumed = pauseRedis(1_500);
    const res = await forward('POST', path);
    await resumed;
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'queue_unavailable' });
    // Give the workers every chance to run it, had it stayed in the queue.
    const probe = await forward('GET', `/probe-${randomUUID()}`);
    expect(probe.status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(seen(path)).toBe(0);
  });

  it('a longer stall: 503 enqueue_uncertain with the job Location; polling it says withdrawn once Redis resumes; never sent', async () => {
    const path = `/long-${randomUUID()}`;
    const resumed = pauseRedis(3_500);
    const res = await forward('POST', path);
    expect(res.status).toBe(503);
    const body = JSON.parse(res.body) as { code: string; jobId: string };
    expect(body.code).toBe('enqueue_uncertain');
    expect(res.headers['location']).toBe(`/mtls/jobs/${body.jobId}`);
    expect(res.headers['lp-job-id']).toBe(body.jobId);
    await resumed;
    await vi.waitFor(async () => expect(await poll(`/mtls/jobs/${body.jobId}`)).toMatchObject({ state: 'failed', error: { code: 'queue_unavailable' } }), {
      timeout: 10_000,
      interval: 100,
    });
    const probe = await forward('GET', `/probe-${randomUUID()}`);
    expect(probe.status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(seen(path)).toBe(0);
  });

  it('an Idempotency-Key whose claim timed out in a stall can be used again at once, and the request is sent once', async () => {
    const path = `/keyed-${randomUUID()}`;
    const key = randomUUID();
    const resumed = pauseRedis(2_500);
    const first = await forward('POST', path, { 'idempotency-key': key });
    expect(first.status).toBe(503);
    expect(JSON.parse(first.body)).toMatchObject({ code: 'queue_unavailable' });
    await resumed;
    const again = await forward('POST', path, { 'idempotency-key': key });
    expect(again.status).toBe(200);
    expect(again.body).toBe(`answer POST ${path}`);
    const replay = await forward('POST', path, { 'idempotency-key': key });
    expect(replay.status).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(seen(path)).toBe(1);
  });

  it('a pause longer than the job lock while every worker lives: nothing is sent twice and nothing ends delivery_uncertain', async () => {
    target.reset();
    const paths = { get: `/lock-get-${randomUUID()}`, keyed: `/lock-keyed-${randomUUID()}`, plain: `/lock-plain-${randomUUID()}` };
    const pending = Promise.all([
      forward('GET', `${paths.get}?hold=1200`),
      forward('POST', `${paths.keyed}?hold=1200`, { 'idempotency-key': randomUUID() }),
      forward('POST', `${paths.plain}?hold=1200`),
    ]);
    await target.waitForRequests(3);
    await pauseRedis(3_500);
    const [get, keyed, plain] = await pending;
    expect([get.status, keyed.status, plain.status]).toEqual([200, 200, 200]);
    expect(plain.body).toBe(`answer POST ${paths.plain}`);
    // The jobs really were taken over after the pause (else this case would prove nothing)...
    await vi.waitFor(() => expect(relay.workers.some((w) => w.logs.some((l) => l.msg === 'forward job taken over after its lock expired'))).toBe(true), {
      timeout: 10_000,
      interval: 100,
    });
    // ...and the takeover found the answers recorded instead of sending again.
    await new Promise((r) => setTimeout(r, 500));
    expect([seen(paths.get), seen(paths.keyed), seen(paths.plain)]).toEqual([1, 1, 1]);
  });

  it('a synchronous caller whose reply is lost gets the recorded answer, not a wait timeout', async () => {
    // The relay's workers step aside; a worker of this test records the outcome the relay's way but never
    // publishes the reply, as when a reply is lost on the way.
    await Promise.all(relay.workers.map((w) => w.stop('SIGTERM')));
    const ring = createKeyRing(Buffer.from(relay.masterKey, 'base64'));
    const silent = new Worker(
      'forward',
      async (job) => {
        const batch = forwardBatchSchema.parse(job.data);
        for (const f of batch.forwards) {
          const result = {
            v: 1,
            status: 200,
            response: sealResponse(ring, f.id, { headers: [['content-type', 'text/plain']], body: Buffer.from('recorded, never announced') }),
            bodyBytes: 25,
            mtls: { used: false },
            finishedAt: Date.now(),
          };
          await relay.client.hsetnx(`${relay.prefix}:forward:${job.id}`, recordField(f.id), JSON.stringify({ a: f.accountId, n: 1, ok: true, result }));
        }
        return { v: 2, forwards: batch.forwards.length };
      },
      { connection: new Redis(redis.url, { maxRetriesPerRequest: null }), prefix: relay.prefix },
    );
    try {
      const res = await forward('GET', `/lost-${randomUUID()}`);
      expect(res.status).toBe(200);
      expect(res.body).toBe('recorded, never announced');
    } finally {
      await silent.close();
    }
  });
});
