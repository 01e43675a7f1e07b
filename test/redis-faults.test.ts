/**
 * Redis faults with real processes and a private appendonly Redis that the test stops and starts:
 * fail fast at enqueue (503, nothing enqueued), readiness follows Redis, and nothing accepted is lost across a
 * Redis restart. Needs a Redis it can restart, so it does not run against an external REDIS_URL.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startTestRedis } from './support/redis.ts';
import type { TestRedis } from './support/redis.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

const external = process.env['REDIS_URL'] !== undefined && process.env['REDIS_URL'] !== '';
let redis: TestRedis;
let relay: Relay;
let target: MtlsTarget;
const account = 'faults1';

const forward = async (path: string, headers: Record<string, string> = {}) => {
  const res = await request(`${relay.api.url}/mtls/account/${account}`, {
    method: 'POST',
    headers: { ...relay.auth(), 'lp-forward-url': `${target.url}${path}`, ...headers },
    body: path,
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
};
const readyz = async (): Promise<number> => (await request(`${relay.api.url}/readyz`)).statusCode;

describe.skipIf(external)('Redis faults (private appendonly Redis; skipped with an external REDIS_URL, which cannot be restarted)', () => {
  beforeAll(async () => {
    redis = await startTestRedis({ appendonly: true });
    const serverCa = await createCA('faults-server-ca');
    const clientCa = await createCA('faults-client-ca');
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false });
    relay = await startRelay({ redis, targetCaPem: serverCa.certPem });
  });

  afterAll(async () => {
    await relay?.close();
    await redis?.close();
    await target?.close();
  });

  it('Redis down at enqueue: 503 queue_unavailable with Retry-After, readiness 503, nothing enqueued; both recover', async () => {
    expect(await readyz()).toBe(200);
    await redis.stop();
    const started = performance.now();
    const res = await forward(`/while-down-${randomUUID()}`);
    const ms = performance.now() - started;
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'queue_unavailable' });
    expect(res.headers['retry-after']).toBeDefined();
    console.log(`[figure] 503 queue_unavailable answered ${ms.toFixed(0)} ms after Redis went down`);
    expect(await readyz()).toBe(503);

    await redis.start();
    await vi.waitFor(async () => expect(await readyz()).toBe(200), { timeout: 15_000, interval: 200 });
    expect((await forward('/after-restart')).status).toBe(200);
    // The request refused while Redis was down was never enqueued, so the target never saw it.
    expect(target.requests.some((r) => r.path.startsWith('/while-down-'))).toBe(false);
  });

  it('100 queued jobs survive a Redis restart: all complete, each sent exactly once', async () => {
    // No worker: the jobs wait in the queue.
    await Promise.all(relay.workers.map((w) => w.stop('SIGTERM')));
    relay.workers.length = 0;
    target.reset();
    const batch = randomUUID().slice(0, 8);
    const accepted = await Promise.all(
      Array.from({ length: 100 }, (_, i) => forward(`/q/${batch}/${i}`, { prefer: 'respond-async' })),
    );
    expect(accepted.map((r) => r.status)).toEqual(Array(100).fill(202));

    await redis.stop();
    await redis.start();
    await relay.startWorker();

    await vi.waitFor(() => expect(new Set(target.requests.map((r) => r.path)).size).toBe(100), { timeout: 30_000, interval: 200 });
    const paths = target.requests.map((r) => r.path).sort();
    expect(paths).toHaveLength(100);
    expect(new Set(paths).size).toBe(100);
    const jobIds = accepted.map((r) => (JSON.parse(r.body) as { jobId: string }).jobId);
    await vi.waitFor(async () => {
      const states = await Promise.all(
        jobIds.map(async (id) => JSON.parse(await (await request(`${relay.api.url}/mtls/jobs/${id}`, { headers: relay.auth() })).body.text()).state as string),
      );
      expect(states.every((s) => s === 'completed')).toBe(true);
    }, { timeout: 15_000, interval: 300 });
  });
});
