/**
 * No secret at rest in clear (README "Secrets never reach Redis in clear"): drives everything that
 * writes to Redis — certificates with private keys, forwards with LP-authorization-override, request and
 * response bodies and headers, async results kept for polling, failed jobs, retries — then reads every key
 * the relay wrote and finds no PEM, no private key, no override token and no plaintext body. (Every other
 * e2e file's Redis gets the same scan when it stops: test/support/redis.ts.)
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { request } from 'undici';
import { batchIdOf } from '../packages/shared/src/forward-ids.ts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerAtRestSecret, scanRedisAtRest } from './support/at-rest.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startService } from './support/services.ts';

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const a = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return typeof a === 'object' && a !== null ? a.port : 1;
}

describe('secrets at rest in Redis', () => {
  let relay: Relay;
  let target: MtlsTarget;
  let client: Issued;
  const account = `rest${randomBytes(3).toString('hex')}`;
  const marker = (what: string): string => {
    const value = `${what}-${randomBytes(12).toString('hex')}`;
    registerAtRestSecret(value);
    return value;
  };
  const override = `Bearer ${marker('override')}`;
  const requestBody = `{"card":"${marker('request-body')}"}`;
  const responseSecret = marker('response-body');
  const cookie = marker('cookie');

  beforeAll(async () => {
    const ca = await createCA('at-rest-ca');
    const server = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    client = await issueCertificate(ca, { commonName: 'at-rest-client', usage: 'client' });
    registerAtRestSecret(client.keyPem);
    target = await startMtlsTarget({
      server,
      clientCa: ca.certPem,
      requireClientCert: false,
      handler: (req, res) => {
        if (req.path.startsWith('/fail')) {
          res.statusCode = 503;
          res.end('busy');
          return;
        }
        res.setHeader('set-cookie', `session=${cookie}; HttpOnly`);
        res.setHeader('x-echo-auth', String(req.headers['authorization'] ?? ''));
        res.end(`{"secret":"${responseSecret}","got":${JSON.stringify(req.body.toString())}}`);
      },
    });
    relay = await startRelay({ targetCaPem: ca.certPem });
    const cert = await relay.store.createCertificate(account, { name: 'rest', certificate: client.chainPem, privateKey: client.keyPem, associatedHostnames: ['localhost'] });
    await relay.store.createMapping(account, { serviceName: 'pay', url: `${target.url}/sync`, certificateId: cert.id });
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
  });

  const forward = (path: string, extra: Record<string, string> = {}) =>
    request(`${relay.api.url}/mtls/account/${account}`, {
      method: 'POST',
      headers: { ...relay.auth(), 'lp-forward-url': `${target.url}${path}`, 'lp-service-name': 'pay', 'lp-authorization-override': override, 'content-type': 'application/json', ...extra },
      body: requestBody,
    });

  it('after sync, async, failed and idempotent forwards with secrets, no key of the relay holds one in clear', async () => {
    const sync = await forward('/sync');
    expect(sync.statusCode).toBe(200);
    expect(await sync.body.text()).toContain(responseSecret);
    expect(target.requests[0]?.headers['authorization']).toBe(override);
    expect(target.requests[0]?.clientCert).not.toBeNull();

    const queryKey = `qk-${randomBytes(12).toString('hex')}`;
    const accepted = await forward(`/async?api_key=${queryKey}`, { prefer: 'respond-async', 'idempotency-key': randomBytes(8).toString('hex') });
    expect(accepted.statusCode).toBe(202);
    const { jobId } = (await accepted.body.json()) as { jobId: string };
    await vi.waitFor(async () => {
      const r = await request(`${relay.api.url}/mtls/jobs/${jobId}/response`, { headers: relay.auth() });
      const text = await r.body.text();
      expect(r.statusCode).toBe(200);
      expect(text).toContain(responseSecret);
    }, { timeout: 15_000, interval: 100 });

    const failed = await forward('/fail');
    await failed.body.text();
    expect(failed.statusCode).toBe(503);

    const down = await request(`${relay.api.url}/mtls/account/${account}`, {
      method: 'PUT',
      headers: { ...relay.auth(), 'lp-forward-url': `https://127.0.0.1:${await closedPort()}/down`, 'lp-authorization-override': override },
      body: requestBody,
    });
    await down.body.text();
    expect(down.statusCode).toBe(502);

    const scan = await scanRedisAtRest(relay.client, { prefix: relay.prefix });
    expect(scan.keys).toBeGreaterThan(5);
    expect(scan.findings).toEqual([]);

    // What is there is sealed: the forward's request headers, query and body in its batch job, its recorded result.
    const batchKey = `${relay.prefix}:forward:${batchIdOf(jobId)}`;
    const data = JSON.parse((await relay.client.hget(batchKey, 'data')) ?? '{}') as { requests?: string; forwards?: Array<{ id: string; request?: string; url?: string }> };
    const entry = data.forwards?.find((f) => f.id === jobId);
    // The api's batches carry their forwards' requests in one sealed piece.
    expect(entry?.request).toBeUndefined();
    expect(data.requests).toMatch(/^s1\./);
    // The query string (it often carries API keys) is sealed with the rest; origin and path stay readable.
    expect(entry?.url).toBe(`${target.url}/async`);
    expect(JSON.stringify(data)).not.toContain(queryKey);
    expect(target.requests.some((r) => r.path === `/async?api_key=${queryKey}`)).toBe(true);
    const record = JSON.parse((await relay.client.hget(batchKey, `r:${jobId}`)) ?? '{}') as { result?: { response?: string } };
    expect(record.result?.response).toMatch(/^s1\./);
  });

  /**
   * 16 forwards at once, each with its own body (which the target echoes): every caller must get the response to its
   * own request. Each forward's id, body and the `response` its record holds (a sealed piece or a group's field).
   */
  const burst = async (label: string): Promise<Array<{ id: string; body: string; response: string }>> => {
    const bodies = Array.from({ length: 16 }, (_, i) => `{"n":${i},"card":"${marker(label)}"}`);
    return Promise.all(
      bodies.map(async (body) => {
        const res = await request(`${relay.api.url}/mtls/account/${account}`, {
          method: 'POST',
          headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/sync`, 'lp-service-name': 'pay', 'content-type': 'application/json' },
          body,
        });
        const id = String(res.headers['lp-job-id']);
        const text = await res.body.text();
        expect(res.statusCode).toBe(200);
        expect((JSON.parse(text) as { got: string }).got).toBe(body);
        const record = JSON.parse((await relay.client.hget(`${relay.prefix}:forward:${batchIdOf(id)}`, `r:${id}`)) ?? '{}') as { result?: { response?: string } };
        return { id, body, response: record.result?.response ?? '' };
      }),
    );
  };

  it('responses recorded together are sealed in one group in their job; every caller and every poll gets its own response', async () => {
    // Forwards answered at once: the worker records them in one pipeline, their small responses sealed together.
    let grouped: { id: string; body: string } | undefined;
    for (let round = 0; round < 5 && grouped === undefined; round++) {
      for (const a of await burst('grouped')) {
        if (a.response.startsWith('g:')) grouped ??= { id: a.id, body: a.body };
      }
    }
    expect(grouped).toBeDefined();
    const { id, body } = grouped as { id: string; body: string };
    const key = `${relay.prefix}:forward:${batchIdOf(id)}`;
    const field = (JSON.parse((await relay.client.hget(key, `r:${id}`)) ?? '{}') as { result: { response: string } }).result.response;
    expect(await relay.client.hget(key, field)).toMatch(/^s1\./);
    // Polling reads the record and then its group.
    const polled = await request(`${relay.api.url}/mtls/jobs/${id}/response`, { headers: relay.auth() });
    expect(polled.statusCode).toBe(200);
    expect((JSON.parse(await polled.body.text()) as { got: string }).got).toBe(body);
    const view = await request(`${relay.api.url}/mtls/jobs/${id}`, { headers: relay.auth() });
    expect(view.statusCode).toBe(200);
    expect((await view.body.json()) as unknown).toMatchObject({ id, state: 'completed', response: { status: 200, headers: { 'set-cookie': expect.stringContaining('session=') } } });
    const scan = await scanRedisAtRest(relay.client, { prefix: relay.prefix });
    expect(scan.findings).toEqual([]);
  });

  it('FORWARD_RESPONSE_SEALING=forward: a worker seals each response on its own, the format older apis read', async () => {
    // The relay's worker makes way for one with the setting, as during an upgrade in which older apis still run.
    const current = relay.workers.splice(0, 1);
    await Promise.all(current.map((w) => w.stop()));
    const older = await relay.startWorker({ FORWARD_RESPONSE_SEALING: 'forward' });
    try {
      for (const a of await burst('alone')) {
        expect(a.response).toMatch(/^s1\./);
        expect((await relay.client.hkeys(`${relay.prefix}:forward:${batchIdOf(a.id)}`)).filter((f) => f.startsWith('g:'))).toEqual([]);
      }
    } finally {
      relay.workers.splice(relay.workers.indexOf(older), 1);
      await older.stop();
      await relay.startWorker();
    }
  });

  it('FORWARD_REQUEST_SEALING=forward writes the older format (each request sealed on its own), which the workers still read', async () => {
    // A second api on the same Redis and workers, as during a rolling upgrade whose older workers still run.
    const older = await startService('api', { ...relay.env, FORWARD_REQUEST_SEALING: 'forward' });
    try {
      const res = await request(`${older.url}/mtls/account/${account}`, {
        method: 'POST',
        headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/sync`, 'lp-service-name': 'pay', 'lp-authorization-override': override, 'content-type': 'application/json' },
        body: requestBody,
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toContain(responseSecret);
      const jobId = String(res.headers['lp-job-id']);
      const data = JSON.parse((await relay.client.hget(`${relay.prefix}:forward:${batchIdOf(jobId)}`, 'data')) ?? '{}') as { requests?: string; forwards?: Array<{ id: string; request?: string }> };
      expect(data.requests).toBeUndefined();
      expect(data.forwards?.find((f) => f.id === jobId)?.request).toMatch(/^s1\./);
      expect(JSON.stringify(data)).not.toContain(override);
    } finally {
      await older.stop();
    }
  });

  it('control: the scan does find a secret planted in clear, in any of its encodings', async () => {
    const planted = `${relay.prefix}:planted`;
    try {
      await relay.client.hset(planted, 'pem', client.keyPem, 'token', Buffer.from(override).toString('base64'), 'job', JSON.stringify({ body: 'plain' }));
      const scan = await scanRedisAtRest(relay.client, { prefix: planted });
      expect(scan.findings.map((f) => f.what)).toEqual(
        expect.arrayContaining(['a PEM block', 'a private key', expect.stringMatching(/registered test secret "overri/), 'an unsealed "body"']),
      );
    } finally {
      await relay.client.del(planted);
    }
  });
});
