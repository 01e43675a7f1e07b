/**
 * Operations end to end: /metrics on the api and the worker after real forwards, request ids from the caller to
 * the target and the worker's log, the certificate-expiry job, readiness following Redis, the queue dashboard.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { queueOptions } from '../packages/shared/src/jobs.ts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { mintToken } from '../scripts/lib/tokens.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { assertMatchesOpenApi } from './support/openapi.ts';
import { find, parseMetrics, total } from './support/prometheus.ts';
import type { Sample } from './support/prometheus.ts';
import { startTestRedis } from './support/redis.ts';
import { freePort } from '../scripts/lib/ports.ts';
import type { TestRedis } from './support/redis.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import type { ServiceProcess } from './support/services.ts';

const external = process.env['REDIS_URL'] !== undefined && process.env['REDIS_URL'] !== '';
const DAY_MS = 86_400_000;
const account = `ops${randomBytes(3).toString('hex')}`;
const expiringAccount = `exp${randomBytes(3).toString('hex')}`;
let redis: TestRedis;
let relay: Relay;
let target: MtlsTarget;
let mappedId: string;
let expiringId: string;

const lastWorker = (): ServiceProcess => relay.workers[relay.workers.length - 1] as ServiceProcess;

async function metricsOf(url: string, headers: Record<string, string> = {}): Promise<Sample[]> {
  const res = await request(`${url}/metrics`, { headers });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  const text = await res.body.text();
  if (url === relay.api.url) assertMatchesOpenApi('GET', '/metrics', res.statusCode, res.headers, text);
  return parseMetrics(text);
}

const forward = async (url: string, headers: Record<string, string> = {}) => {
  const res = await request(`${relay.api.url}/mtls/account/${account}`, {
    headers: { ...relay.auth(), 'lp-forward-url': url, 'lp-service-name': 'ops', ...headers },
  });
  const answer = { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  assertMatchesOpenApi('GET', `/mtls/account/${account}`, answer.status, answer.headers, answer.body);
  return answer;
};

describe('operations: metrics, request ids, expiry check, readiness, queue dashboard', () => {
  beforeAll(async () => {
    redis = await startTestRedis({ appendonly: true });
    const serverCa = await createCA('ops-server-ca');
    const clientCa = await createCA('ops-client-ca');
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false });
    relay = await startRelay({
      redis,
      targetCaPem: serverCa.certPem,
      env: { CERT_EXPIRY_CHECK_SECONDS: '5', BREAKER_VOLUME_THRESHOLD: '2', FORWARD_ATTEMPTS: '1' },
    });
    const client = await issueCertificate(clientCa, { commonName: 'ops-client', usage: 'client', notAfter: new Date(Date.now() + 90 * DAY_MS) });
    mappedId = (await relay.store.createCertificate(account, { name: 'ops', certificate: client.chainPem, privateKey: client.keyPem })).id;
    await relay.store.createMapping(account, { serviceName: 'ops', url: `${target.url}/hello`, certificateId: mappedId });
    const soon = await issueCertificate(clientCa, { commonName: 'expires-soon', usage: 'client', notAfter: new Date(Date.now() + 10 * DAY_MS) });
    expiringId = (await relay.store.createCertificate(expiringAccount, { name: 'soon', certificate: soon.chainPem, privateKey: soon.keyPem })).id;
  });

  afterAll(async () => {
    await relay?.close();
    await redis?.close();
    await target?.close();
  });

  it('after one forward, the api and the worker export the listed series, and the request id reached the target and the worker log', async () => {
    expect((await request(`${relay.api.url}/readyz`)).statusCode).toBe(200);
    const res = await forward(`${target.url}/hello`, { 'x-request-id': 'ops-request-1' });
    expect(res.status).toBe(200);
    expect(res.headers['lp-mtls']).toBe('used');
    expect(res.headers['x-request-id']).toBe('ops-request-1');
    expect(target.requests.at(-1)?.headers['x-request-id']).toBe('ops-request-1');
    const line = await lastWorker().waitForLog((l) => l.msg === 'forwarded' && l['requestId'] === 'ops-request-1');
    expect(line['jobId']).toBe(res.headers['lp-job-id']);
    const access = await relay.api.waitForLog((l) => l.msg === 'request' && l['reqId'] === 'ops-request-1');
    expect(access).toMatchObject({ status: 200, method: 'GET', jobId: res.headers['lp-job-id'] });

    const api = await metricsOf(relay.api.url, relay.auth());
    expect(total(api, 'mtls_relay_forwards_total', { method: 'GET', status_class: '2xx', mtls: 'used' })).toBe(1);
    expect(total(api, 'mtls_relay_forward_duration_seconds_count', { status_class: '2xx', mtls: 'used' })).toBe(1);
    expect(total(api, 'mtls_relay_http_request_duration_seconds_count', { route: '/mtls/account/:accountId' })).toBe(1);
    expect(total(api, 'mtls_relay_queue_jobs', { queue: 'forward', state: 'completed' })).toBe(1);
    expect(find(api, 'mtls_relay_queue_jobs', { queue: 'forward', state: 'waiting' })).toHaveLength(1);
    expect(find(api, 'mtls_relay_queue_oldest_waiting_job_age_seconds', { queue: 'forward' })).toHaveLength(1);
    expect(total(api, 'mtls_relay_store_operation_duration_seconds_count', { operation: 'health', backend: 'embedded' })).toBeGreaterThanOrEqual(1);
    expect(find(api, 'process_cpu_seconds_total')).toHaveLength(1);

    const worker = await metricsOf(lastWorker().url);
    expect(total(worker, 'mtls_relay_forward_jobs_total', { status_class: '2xx', mtls: 'used' })).toBe(1);
    expect(total(worker, 'mtls_relay_job_duration_seconds_count', { queue: 'forward', outcome: 'completed' })).toBe(1);
    expect(total(worker, 'mtls_relay_job_wait_seconds_count', { queue: 'forward' })).toBe(1);
    // A healthy origin keeps no breaker: the gauge is exported, at 0.
    expect(find(worker, 'mtls_relay_breakers', { state: 'closed' }).map((s) => s.value)).toEqual([0]);
    expect(total(worker, 'mtls_relay_store_operation_duration_seconds_count', { operation: 'read' })).toBeGreaterThanOrEqual(1);
    expect(find(worker, 'mtls_relay_queue_jobs', { queue: 'forward', state: 'completed' })).toHaveLength(1);
  });

  it('a failing origin shows as an open breaker of that origin, and its errors by code', async () => {
    const dead = `https://127.0.0.1:${await freePort()}`;
    for (let i = 0; i < 3; i++) expect((await forward(`${dead}/x`)).status).toBeGreaterThanOrEqual(502);
    await vi.waitFor(async () => {
      const worker = await metricsOf(lastWorker().url);
      expect(find(worker, 'mtls_relay_breaker_state', { origin: dead, state: 'open' }).map((s) => s.value)).toEqual([1]);
      expect(total(worker, 'mtls_relay_breakers', { state: 'open' })).toBe(1);
      expect(total(worker, 'mtls_relay_forward_attempt_errors_total', { code: 'target_unreachable', final: 'true' })).toBeGreaterThanOrEqual(1);
      // The healthy origin stays closed and is only counted, not listed.
      expect(find(worker, 'mtls_relay_breaker_state', { origin: new URL(target.url).origin })).toEqual([]);
    }, { timeout: 10_000, interval: 200 });
  });

  it('a job waiting for a worker shows its age; a second worker does not add a second expiry schedule', async () => {
    await lastWorker().stop();
    const res = await forward(`${target.url}/hello`, { prefer: 'respond-async' });
    expect(res.status).toBe(202);
    await vi.waitFor(async () => {
      const api = await metricsOf(relay.api.url, relay.auth());
      expect(total(api, 'mtls_relay_queue_jobs', { queue: 'forward', state: 'waiting' })).toBe(1);
      expect(total(api, 'mtls_relay_queue_oldest_waiting_job_age_seconds', { queue: 'forward' })).toBeGreaterThan(0);
    }, { timeout: 10_000, interval: 200 });

    await relay.startWorker();
    await relay.startWorker();
    await vi.waitFor(async () => {
      const api = await metricsOf(relay.api.url, relay.auth());
      expect(total(api, 'mtls_relay_queue_jobs', { queue: 'forward', state: 'waiting' })).toBe(0);
      expect(total(api, 'mtls_relay_queue_oldest_waiting_job_age_seconds', { queue: 'forward' })).toBe(0);
    }, { timeout: 15_000, interval: 200 });
    const expiry = new Queue('expiry', { connection: relay.client, ...queueOptions(relay.prefix) });
    try {
      expect((await expiry.getJobSchedulers()).map((s) => s.key)).toEqual(['certificate-expiry']);
    } finally {
      await expiry.close();
    }
  });

  it('a certificate that expires in 10 days appears in the metrics and in a warning log line', async () => {
    // The repeatable check runs on whichever worker takes it: look at every worker's lines.
    let line: Record<string, unknown> | undefined;
    await vi.waitFor(() => {
      line = relay.workers.flatMap((w) => w.logs).find((l) => l.level === 'warn' && l['certificateId'] === expiringId);
      expect(line).toBeDefined();
    }, { timeout: 30_000, interval: 200 });
    const warned = line as Record<string, unknown>;
    expect(warned).toMatchObject({ accountId: expiringAccount, name: 'soon', withinDays: 14, msg: 'certificate expires within 14 days' });
    expect(warned['daysLeft']).toBeGreaterThan(9);
    expect(warned['daysLeft']).toBeLessThanOrEqual(10);
    // The 90-day certificate is not warned about: read once the pass that warned has logged its end, so that every
    // line of that pass is out (lines are written in order, 16 KiB at a time or every 100 ms).
    await vi.waitFor(() => {
      const passEnded = relay.workers.some((w) => {
        const at = w.logs.indexOf(warned);
        return at !== -1 && w.logs.slice(at).some((l) => l.msg === 'certificate expiry check done');
      });
      expect(passEnded).toBe(true);
    }, { timeout: 10_000, interval: 50 });
    expect(relay.workers.flatMap((w) => w.logs).some((l) => l['certificateId'] === mappedId && l.level === 'warn')).toBe(false);

    // The check logs its warnings before it stores the snapshot /metrics reads, and a scrape reuses a read of it for
    // up to a second: poll until both have caught up.
    await vi.waitFor(async () => {
      for (const url of [relay.api.url, lastWorker().url]) {
        const samples = await metricsOf(url, relay.auth());
        const [days] = find(samples, 'mtls_relay_certificate_expiry_days', { account_id: expiringAccount, certificate_id: expiringId });
        expect(days?.value).toBeGreaterThan(9);
        expect(days?.value).toBeLessThanOrEqual(10);
        expect(total(samples, 'mtls_relay_certificate_expiry_days', { certificate_id: mappedId })).toBeGreaterThan(89);
        expect(total(samples, 'mtls_relay_certificates_expiring', { within_days: '14' })).toBe(1);
        expect(total(samples, 'mtls_relay_certificates_expiring', { within_days: '7' })).toBe(0);
        expect(total(samples, 'mtls_relay_certificate_expiry_check_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
      }
    }, { timeout: 15_000, interval: 250 });
  });

  it("credentials limited to some accounts see only their own accounts' certificate series on /metrics", async () => {
    await vi.waitFor(async () => {
      expect(find(await metricsOf(relay.api.url, relay.auth()), 'mtls_relay_certificate_expiry_days', { certificate_id: expiringId })).toHaveLength(1);
    }, { timeout: 30_000, interval: 500 });
    const reader = await mintToken({ secret: relay.env['AUTH_JWT_SECRET'] as string, roles: ['admin'], accounts: [account], ttlSeconds: 600, subject: 'one-tenant' });
    const res = await request(`${relay.api.url}/metrics`, { headers: { authorization: `Bearer ${reader}` } });
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    assertMatchesOpenApi('GET', '/metrics', res.statusCode, res.headers, text);
    expect(text).not.toContain(expiringAccount);
    expect(text).not.toContain(expiringId);
    const samples = parseMetrics(text);
    expect(find(samples, 'mtls_relay_certificate_expiry_days').map((s) => s.labels)).toEqual([{ account_id: account, certificate_id: mappedId, service: 'api' }]);
    // Series without account ids are still there.
    expect(find(samples, 'mtls_relay_forwards_total').length).toBeGreaterThan(0);
  });

  it('the queue dashboard is for administrators only', async () => {
    expect((await request(`${relay.api.url}/admin/queues`)).statusCode).toBe(401);
    const oneAccount = await mintToken({ secret: relay.env['AUTH_JWT_SECRET'] as string, roles: ['admin'], accounts: [account], ttlSeconds: 600 });
    const denied = await request(`${relay.api.url}/admin/queues`, { headers: { authorization: `Bearer ${oneAccount}` } });
    expect(denied.statusCode).toBe(403);
    expect(denied.headers['content-type']).toMatch(/problem\+json/);
    await denied.body.dump();
    const page = await request(`${relay.api.url}/admin/queues`, { headers: relay.auth() });
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toContain('mtls-relay queues');
    const api = await request(`${relay.api.url}/admin/queues/api/queues`, { headers: relay.auth() });
    expect(api.statusCode).toBe(200);
    const names = ((await api.body.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> }).queues.map((q) => [q.name, q.readOnlyMode]);
    expect(names.sort()).toEqual([['expiry', false], ['forward', true], ['mapping', true]]);
  });

  it.skipIf(external)('/readyz of the api and the worker answers 503 while Redis is stopped and 200 once it is back', async () => {
    const urls = [relay.api.url, lastWorker().url];
    for (const url of urls) expect((await request(`${url}/readyz`)).statusCode).toBe(200);
    await redis.stop();
    try {
      for (const url of urls) {
        const res = await request(`${url}/readyz`);
        expect(res.statusCode).toBe(503);
        const body = (await res.body.json()) as { checks: Array<{ name: string; ok: boolean }> };
        expect(body.checks.find((c) => c.name === 'redis')?.ok).toBe(false);
        expect(body.checks.map((c) => c.name)).toContain('queues');
      }
      // Liveness does not depend on Redis: restarting the process would not help.
      for (const url of urls) expect((await request(`${url}/healthz`)).statusCode).toBe(200);
    } finally {
      await redis.start();
    }
    await vi.waitFor(async () => {
      for (const url of urls) expect((await request(`${url}/readyz`)).statusCode).toBe(200);
    }, { timeout: 20_000, interval: 250 });
  });
});
