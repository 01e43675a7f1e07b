/**
 * SSRF guard, loopback only (the full table with private and public addresses runs in test/netns/, inside
 * a network namespace without a route out). Here every refused target is a loopback address that is not
 * allowlisted (the relay allows 127.0.0.1, ::1 and localhost for the test targets), spelled every way,
 * named through the test DNS server, or the relay's own port. Listeners on those addresses record every
 * connection: a refusal must come before any socket opens.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectForward } from './support/inject.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { freePort } from '../scripts/lib/ports.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startTestDns } from './support/resolver.ts';
import type { TestDns } from './support/resolver.ts';
import { startTrap } from './support/trap.ts';
import type { Trap } from './support/trap.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('SSRF guard on loopback', () => {
  let relay: Relay;
  let dns: TestDns;
  let trap: Trap;
  let target: MtlsTarget;
  let apiKnownMetricsPort = 0;
  const account = `ssrf${randomBytes(3).toString('hex')}`;

  const forward = async (url: string, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await request(`${relay.api.url}/mtls/account/${account}`, {
      method: 'GET',
      headers: { ...relay.auth(), 'lp-forward-url': url, ...headers },
    });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  };
  const jobCount = async (): Promise<number> =>
    (await relay.client.keys(`${relay.prefix}:forward:*`)).filter((k) => /:forward:[0-9a-f-]{36}$/.test(k)).length;

  beforeAll(async () => {
    dns = await startTestDns();
    trap = await startTrap(['127.0.0.1', '127.0.0.2', '127.0.0.3', '::1']);
    const serverCa = await createCA('ssrf-target-ca');
    const serverCert = await issueCertificate(serverCa, {
      commonName: 'localhost',
      usage: 'server',
      dnsNames: ['localhost', 'ok.test', 'rebind.test'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    target = await startMtlsTarget({ server: serverCert, clientCa: serverCa.certPem, requireClientCert: false });
    // The api is told a METRICS_PORT (nothing listens there: it must refuse it before enqueueing); the worker binds a
    // port of its own choosing (METRICS_PORT=0), which only it knows and refuses at dial time.
    apiKnownMetricsPort = await freePort();
    relay = await startRelay({ workers: 0, targetCaPem: serverCa.certPem, env: { TARGET_DNS_SERVERS: dns.server, METRICS_PORT: String(apiKnownMetricsPort) } });
    await relay.startWorker({ METRICS_PORT: '0' });

    dns.set('ok.test', ['127.0.0.1']);
    dns.set('loop2.test', ['127.0.0.2']);
    dns.set('loop-mapped.test', ['::ffff:127.0.0.2']);
    dns.set('mixed.test', ['127.0.0.1', '127.0.0.2']);
    dns.set('mixed-family.test', ['127.0.0.1', '::ffff:127.0.0.3']);
    // Allowed when the API checks (first A query), loopback-but-not-allowlisted when the worker dials.
    dns.set('rebind.test', (n) => (n === 0 ? ['127.0.0.1'] : ['127.0.0.2']));
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
    await trap?.close();
    await dns?.close();
  });

  const refusedAtApi = (): Array<[string, string]> => {
    const p = trap.port;
    const api = relay.api.port;
    return [
      ['literal', `https://127.0.0.2:${p}/`],
      ['decimal', `https://2130706434:${p}/`],
      ['hex', `https://0x7f000002:${p}/`],
      ['hex with dots', `https://0x7f.0.0.2:${p}/`],
      ['octal', `https://0177.0.0.2:${p}/`],
      ['octal, zero-padded', `https://0177.0000.0000.0002:${p}/`],
      ['short form', `https://127.2:${p}/`],
      ['three parts', `https://127.0.2:${p}/`],
      ['trailing dot', `https://127.0.0.2.:${p}/`],
      ['percent-encoded host', `https://%31%32%37.0.0.2:${p}/`],
      ['IPv4-mapped IPv6', `https://[::ffff:127.0.0.2]:${p}/`],
      ['IPv4-mapped IPv6, hex', `https://[::ffff:7f00:2]:${p}/`],
      ['IPv4-mapped IPv6, long', `https://[0:0:0:0:0:ffff:7f00:3]:${p}/`],
      ['unspecified', `https://0.0.0.0:${p}/`],
      ['unspecified, one part', `https://0:${p}/`],
      ['unspecified IPv6', `https://[::]:${p}/`],
      ['another loopback', `https://127.0.0.3:${p}/`],
      ['a name resolving to loopback', `https://loop2.test:${p}/`],
      ['a name resolving to mapped loopback', `https://loop-mapped.test:${p}/`],
      ['a mixed answer', `https://mixed.test:${p}/`],
      ['a mixed answer across families', `https://mixed-family.test:${p}/`],
      ["the relay's own port", `https://127.0.0.1:${api}/mtls/account/x`],
      ["the relay's own port, decimal", `https://2130706433:${api}/`],
      ["the relay's own port through localhost", `https://localhost:${api}/`],
      ["the relay's own port on ::1", `https://[::1]:${api}/`],
      ["the relay's own port through a name", `https://ok.test:${api}/`],
    ];
  };

  it('refuses every loopback spelling and name with 403 target_not_allowed before enqueueing, and no socket opens', async () => {
    const cases = refusedAtApi();
    expect(cases.length).toBeGreaterThanOrEqual(25);
    const before = await jobCount();
    for (const [what, url] of cases) {
      const res = await forward(url);
      expect(res.status, `${what}: ${url} → ${res.body}`).toBe(403);
      expect(res.headers['content-type'], what).toBe('application/problem+json');
      expect(res.headers['proxy-status'], what).toMatch(/error=destination_ip_prohibited/);
      expect(JSON.parse(res.body), what).toMatchObject({ code: 'target_not_allowed', status: 403 });
      expect(res.headers['lp-job-id'], what).toBeUndefined();
    }
    expect(await jobCount()).toBe(before);
    expect(trap.hits).toEqual([]);
  });

  it("refuses the worker's own health/metrics port although loopback is allowlisted (at dial: the api does not know it)", async () => {
    const metricsPort = relay.workers[0]?.port as number;
    expect(metricsPort).toBeGreaterThan(0);
    for (const url of [`https://127.0.0.1:${metricsPort}/metrics`, `https://localhost:${metricsPort}/readyz`, `https://[::ffff:127.0.0.1]:${metricsPort}/`]) {
      const res = await forward(url);
      expect(res.status, `${url} → ${res.body}`).toBe(403);
      expect(JSON.parse(res.body), url).toMatchObject({ code: 'target_not_allowed' });
    }
  });

  it("refuses the configured METRICS_PORT (the workers' health/metrics port) at the api, before enqueueing", async () => {
    const before = await jobCount();
    for (const url of [`https://127.0.0.1:${apiKnownMetricsPort}/metrics`, `https://localhost:${apiKnownMetricsPort}/`]) {
      const res = await forward(url);
      expect(res.status, `${url} → ${res.body}`).toBe(403);
      expect(JSON.parse(res.body), url).toMatchObject({ code: 'target_not_allowed' });
      expect(JSON.parse(res.body).detail, url).toMatch(/the relay itself/);
      expect(res.headers['lp-job-id'], url).toBeUndefined();
    }
    expect(await jobCount()).toBe(before);
  });

  it('allows the allowlisted loopback address in any spelling and through a name, so the guard is not simply closed', async () => {
    for (const url of [`https://ok.test:${target.port}/by-name`, `https://2130706433:${target.port}/decimal`, `https://0x7f.1:${target.port}/short-hex`]) {
      const res = await forward(url);
      expect(res.status, `${url} → ${res.body}`).toBe(200);
    }
    expect(target.requests.map((r) => r.path)).toEqual(['/by-name', '/decimal', '/short-hex']);
  });

  it('when a name resolves to an allowed address at check time and to a refused one at dial time (DNS rebinding), the worker refuses at dial', async () => {
    const res = await forward(`https://rebind.test:${trap.port}/`);
    expect(res.status, res.body).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'target_not_allowed' });
    expect(res.headers['lp-job-id']).toMatch(/^[0-9a-f-]{36}$/); // it was enqueued: the API's check passed
    expect(dns.queries.filter((q) => q.name === 'rebind.test' && q.type === 'A').length).toBeGreaterThanOrEqual(2);
    expect(trap.hits).toEqual([]);
  });

  it('a job that bypasses the API check (written straight to the queue) is refused by the worker at dial time, literals included', async () => {
    const urls = [`https://127.0.0.2:${trap.port}/`, `https://[::ffff:127.0.0.3]:${trap.port}/`, `https://loop2.test:${trap.port}/`];
    expect(await injectForward(relay, account, urls)).toEqual(urls.map(() => 'target_not_allowed'));
    expect(trap.hits).toEqual([]);
  });

  it('relays a redirect to a refused address as it is, without following it', async () => {
    target.setHandler((_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `https://127.0.0.2:${trap.port}/admin`);
      res.end();
    });
    const res = await forward(`https://127.0.0.1:${target.port}/redirect`);
    expect(res.status).toBe(302);
    expect(res.headers['location']).toBe(`https://127.0.0.2:${trap.port}/admin`);
    expect(trap.hits).toEqual([]);
  });
});
