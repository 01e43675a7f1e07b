/**
 * The synchronous forward path end to end: real api and worker processes, real Redis, real mTLS target.
 * Defined once and run against each store adapter (forward-embedded.test.ts, forward-vault.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../../scripts/lib/pki.ts';
import type { CA, Issued } from '../../scripts/lib/pki.ts';
import { echoHandler, startMtlsTarget } from '../../scripts/lib/mtls-target.ts';
import type { MtlsTarget, TargetHandler } from '../../scripts/lib/mtls-target.ts';
import { startOpensslServer } from '../support/openssl-server.ts';
import type { OpensslServer } from '../support/openssl-server.ts';
import { assertMatchesOpenApi } from '../support/openapi.ts';
import { startRelay } from '../support/relay.ts';
import type { Relay, StoreKind } from '../support/relay.ts';
import type { SuiteOptions } from './suite-options.ts';

const fp = (issued: Issued): string => issued.fingerprint256;

/** Routes by path: /status/NNN answers NNN; /raw echoes the body bytes; /slow answers after 10 s; else JSON echo. */
const routingHandler: TargetHandler = async (req, res) => {
  const status = /^\/status\/(\d{3})/.exec(req.path);
  if (status !== null) {
    const code = Number(status[1]);
    res.statusCode = code;
    res.setHeader('x-target', 'yes');
    res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
    res.end(code === 204 || code === 304 ? undefined : `status ${code}`);
    return;
  }
  if (req.path.startsWith('/raw')) {
    res.statusCode = 200;
    res.setHeader('content-type', 'application/octet-stream');
    res.end(req.body);
    return;
  }
  if (req.path.startsWith('/slow')) {
    await new Promise((r) => setTimeout(r, 10_000).unref());
    if (!res.destroyed) res.end('late');
    return;
  }
  echoHandler(req, res);
};

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 1));
    });
  });
}

export function defineForwardSuite(kind: StoreKind, options: SuiteOptions = {}): void {
  describe(`forward path (${options.label ?? `${kind} store`})`, () => {
    let relay: Relay;
    let clientCa: CA;
    let otherCa: CA;
    let mapped: Issued;
    let byHost: Issued;
    let target: MtlsTarget;
    let strictTarget: MtlsTarget;
    let opensslTarget: OpensslServer;
    let mappedId: string;
    let hostCertId: string;
    const account = `acc${randomBytes(3).toString('hex')}`;

    const forward = async (
      method: string,
      url: string,
      headers: Record<string, string> = {},
      body?: Buffer | string,
    ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> => {
      const res = await request(`${relay.api.url}/mtls/account/${account}`, {
        method: method as 'GET',
        headers: { ...relay.auth(), 'lp-forward-url': url, ...headers },
        body: body ?? null,
      });
      const answer = { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
      // Every answer of this suite must be one the OpenAPI document describes.
      assertMatchesOpenApi(method, `/mtls/account/${account}`, answer.status, answer.headers, answer.body);
      return answer;
    };

    beforeAll(async () => {
      const serverCa = await createCA('target-server-ca');
      clientCa = await createCA('relay-client-ca');
      otherCa = await createCA('other-client-ca');
      const serverCert = await issueCertificate(serverCa, {
        commonName: 'localhost',
        usage: 'server',
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1', '::1'],
      });
      mapped = await issueCertificate(clientCa, { commonName: 'client-mapped', usage: 'client' });
      byHost = await issueCertificate(clientCa, { commonName: 'client-by-host', usage: 'client' });
      target = await startMtlsTarget({ server: serverCert, clientCa: clientCa.certPem, requireClientCert: false, handler: routingHandler });
      strictTarget = await startMtlsTarget({ server: serverCert, clientCa: otherCa.certPem, requireClientCert: true });
      opensslTarget = await startOpensslServer(serverCert, otherCa.certPem);
      relay = await startRelay({ kind, workers: 2, targetCaPem: serverCa.certPem, ...(options.vault === undefined ? {} : { vault: options.vault() }) });

      const m = await relay.store.createCertificate(account, { name: 'mapped', certificate: mapped.chainPem, privateKey: mapped.keyPem });
      mappedId = m.id;
      const h = await relay.store.createCertificate(account, {
        name: 'by-host',
        certificate: byHost.chainPem,
        privateKey: byHost.keyPem,
        associatedHostnames: ['localhost'],
      });
      hostCertId = h.id;
      for (const path of ['/echo/path?x=1&y=%2F', '/raw', '/status/200', '/status/201', '/status/204', '/status/404', '/status/418', '/status/503', '/slow']) {
        await relay.store.createMapping(account, { serviceName: 'billing', url: `${target.url}${path}`, certificateId: mappedId });
      }
      await relay.store.createMapping(account, { serviceName: 'billing', url: `${strictTarget.url}/`, certificateId: mappedId });
      await relay.store.createMapping(account, { serviceName: 'billing', url: `${opensslTarget.url}/`, certificateId: mappedId });
    });

    afterAll(async () => {
      await relay?.close();
      await target?.close();
      await strictTarget?.close();
      await opensslTarget?.close();
    });

    it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])(
      'when %s is forwarded, the target sees the mapped certificate, method, path, query, headers and body',
      async (method) => {
        target.reset();
        const body = method === 'GET' ? undefined : `{"method":"${method}","n":${Math.random()}}`;
        const res = await forward(
          method,
          `${target.url}/echo/path?x=1&y=%2F`,
          {
            'lp-service-name': 'billing',
            'lp-authorization-override': 'Bearer target-token-123',
            'x-custom': 'kept',
            'content-type': 'application/json',
            prefer: 'wait=10',
          },
          body,
        );
        expect(res.status).toBe(200);
        expect(res.headers['lp-mtls']).toBe('used');
        expect(res.headers['lp-mtls-certificate-id']).toBe(mappedId);
        expect(res.headers['lp-job-id']).toMatch(/^[0-9a-f-]{36}$/);
        expect(target.requests).toHaveLength(1);
        const seen = target.requests[0]!;
        expect(seen.method).toBe(method);
        expect(seen.path).toBe('/echo/path?x=1&y=%2F');
        expect(seen.clientCert?.fingerprint256).toBe(fp(mapped));
        expect(seen.headers['x-custom']).toBe('kept');
        expect(seen.headers['authorization']).toBe('Bearer target-token-123');
        expect(seen.headers['content-type']).toBe('application/json');
        for (const stripped of ['prefer', 'lp-forward-url', 'lp-service-name', 'lp-authorization-override']) {
          expect(seen.headers[stripped], stripped).toBeUndefined();
        }
        expect(seen.body.toString()).toBe(body ?? '');
        const echoed = JSON.parse(res.body.toString()) as { method: string; bodyBase64: string };
        expect(echoed.method).toBe(method);
      },
    );

    it('relays a binary body and a 5 MB body byte for byte, both ways', async () => {
      for (const size of [256, 5 * 1024 * 1024]) {
        target.reset();
        const bytes = randomBytes(size);
        const res = await forward('POST', `${target.url}/raw`, { 'lp-service-name': 'billing', 'content-type': 'application/octet-stream' }, bytes);
        expect(res.status).toBe(200);
        expect(target.requests[0]?.body.equals(bytes)).toBe(true);
        expect(res.body.equals(bytes)).toBe(true);
        expect(res.headers['content-type']).toBe('application/octet-stream');
      }
    });

    it.each([200, 201, 204, 404, 418, 503])('relays the target status %i with its headers and body unchanged', async (code) => {
      const res = await forward('POST', `${target.url}/status/${code}`, { 'lp-service-name': 'billing' });
      expect(res.status).toBe(code);
      expect(res.headers['x-target']).toBe('yes');
      expect(res.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
      expect(res.body.toString()).toBe(code === 204 ? '' : `status ${code}`);
      expect(res.headers['lp-mtls']).toBe('used');
    });

    it('when no certificate is mapped, sends without one and says LP-mtls: none', async () => {
      target.reset();
      const res = await forward('GET', `https://127.0.0.1:${target.port}/unmapped`, { 'lp-service-name': 'nobody' });
      expect(res.status).toBe(200);
      expect(res.headers['lp-mtls']).toBe('none');
      expect(res.headers['lp-mtls-certificate-id']).toBeUndefined();
      expect(target.requests[0]?.clientCert).toBeNull();
    });

    it('with LP-stop-if-certificate-not-found: true and no certificate, answers 422 problem+json and never calls the target', async () => {
      target.reset();
      const res = await forward('POST', `https://127.0.0.1:${target.port}/unmapped`, {
        'lp-service-name': 'nobody',
        'lp-stop-if-certificate-not-found': 'true',
      }, 'payload');
      expect(res.status).toBe(422);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'certificate_required', status: 422 });
      expect(target.requests).toHaveLength(0);
    });

    it('an exact (account, service, url) mapping wins over an associated hostname; other services get the hostname certificate', async () => {
      await relay.store.createMapping(account, { serviceName: 'orders', url: `https://localhost:${target.port}/both`, certificateId: mappedId });
      target.reset();
      const exact = await forward('GET', `https://localhost:${target.port}/both`, { 'lp-service-name': 'orders' });
      const other = await forward('GET', `https://localhost:${target.port}/both`, { 'lp-service-name': 'shipping' });
      expect(exact.headers['lp-mtls-certificate-id']).toBe(mappedId);
      expect(other.headers['lp-mtls-certificate-id']).toBe(hostCertId);
      expect(target.requests.map((r) => r.clientCert?.fingerprint256)).toEqual([fp(mapped), fp(byHost)]);
    });

    it('an expired certificate counts as none', async () => {
      const shortLived = await issueCertificate(clientCa, {
        commonName: 'short-lived',
        usage: 'client',
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 2_000),
      });
      const c = await relay.store.createCertificate(account, { name: 'short', certificate: shortLived.chainPem, privateKey: shortLived.keyPem });
      const url = `https://127.0.0.1:${target.port}/expiring`;
      await relay.store.createMapping(account, { serviceName: 'exp', url, certificateId: c.id });
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(Date.parse(c.expiresOn) + 1_000), { timeout: 10_000, interval: 200 });
      target.reset();
      const res = await forward('GET', url, { 'lp-service-name': 'exp' });
      expect(res.status).toBe(200);
      expect(res.headers['lp-mtls']).toBe('none');
      expect(target.requests[0]?.clientCert).toBeNull();
    });

    it('when the target is down, answers 502 with Proxy-Status', async () => {
      const port = await closedPort();
      const res = await forward('GET', `https://127.0.0.1:${port}/`, {});
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.headers['proxy-status']).toMatch(/^mtls-relay; error=connection_refused/);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'target_unreachable' });
    });

    it('when the target rejects our client certificate with a TLS alert, answers 502 client_certificate_rejected', async () => {
      const res = await forward('GET', `${opensslTarget.url}/`, { 'lp-service-name': 'billing' });
      expect(res.status).toBe(502);
      expect(res.headers['proxy-status']).toMatch(/error=tls_alert_received/);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'client_certificate_rejected' });
    });

    it('when the target drops the connection after refusing our certificate (no alert, as Node servers do), answers 502', async () => {
      const res = await forward('GET', `${strictTarget.url}/`, { 'lp-service-name': 'billing' });
      expect(res.status).toBe(502);
      expect(res.headers['proxy-status']).toMatch(/^mtls-relay; error=/);
      expect(strictTarget.requests).toHaveLength(0);
    });

    it('strips hop-by-hop headers and the headers named by Connection before the target sees them', async () => {
      target.reset();
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${relay.api.url}/mtls/account/${account}`, {
          method: 'POST',
          headers: {
            ...relay.auth(),
            'lp-forward-url': `${target.url}/echo/path?x=1&y=%2F`,
            'lp-service-name': 'billing',
            connection: 'keep-alive, x-hop',
            'x-hop': 'must-not-pass',
            'keep-alive': 'timeout=5',
            te: 'trailers',
            'proxy-authorization': 'Basic c2VjcmV0',
            'x-end-to-end': 'passes',
          },
        });
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end('body');
      });
      expect(status).toBe(200);
      const seen = target.requests[0]!;
      expect(seen.headers['x-end-to-end']).toBe('passes');
      for (const h of ['x-hop', 'keep-alive', 'te', 'proxy-authorization']) expect(seen.headers[h], h).toBeUndefined();
      expect(seen.body.toString()).toBe('body');
    });

    it('when the target is slower than the timeout, answers 504', async () => {
      const res = await forward('POST', `${target.url}/slow`, { 'lp-service-name': 'billing' });
      expect(res.status).toBe(504);
      expect(res.headers['proxy-status']).toMatch(/error=http_response_timeout/);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'target_timeout' });
    });

    it("BullMQ's event stream stays short: after 150 forwards (600 events) it holds at most a few hundred", async () => {
      for (let i = 0; i < 5; i++) {
        const batch = await Promise.all(Array.from({ length: 30 }, () => forward('GET', `${target.url}/echo/events`, { 'lp-service-name': 'billing' })));
        expect(batch.map((r) => r.status)).toEqual(Array.from({ length: 30 }, () => 200));
      }
      const events = await relay.client.xlen(`${relay.prefix}:forward:events`);
      expect(events).toBeGreaterThan(0);
      expect(events).toBeLessThan(300);
    });

    it('two worker processes share the load, and forwards keep working when one is stopped', async () => {
      const [w1, w2] = relay.workers as [typeof relay.workers[0], typeof relay.workers[0]];
      // Counted by request id: log lines of earlier tests may still be on their way through the stdout pipes.
      // Forwards that arrive together travel as one batch job: send ten waves of four, so that there are several
      // jobs for the two workers to share.
      const tag = `share-${randomBytes(4).toString('hex')}`;
      const results = [];
      for (let wave = 0; wave < 10; wave++) {
        results.push(...(await Promise.all(
          Array.from({ length: 4 }, (_, i) => forward('GET', `${target.url}/echo/path?x=1&y=%2F`, { 'lp-service-name': 'billing', 'x-request-id': `${tag}-${wave * 4 + i}` })),
        )));
      }
      expect(results.every((r) => r.status === 200)).toBe(true);
      const count = (w: typeof w1): number => w.logs.filter((l) => l.msg === 'forwarded' && String(l['requestId']).startsWith(`${tag}-`)).length;
      await vi.waitFor(() => expect(count(w1) + count(w2)).toBe(40), { timeout: 10_000, interval: 50 });
      expect(count(w1)).toBeGreaterThan(0);
      expect(count(w2)).toBeGreaterThan(0);

      expect(await w1.stop('SIGTERM')).toBe(0);
      const more = await Promise.all(
        Array.from({ length: 5 }, () => forward('GET', `${target.url}/echo/path?x=1&y=%2F`, { 'lp-service-name': 'billing' })),
      );
      expect(more.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    });
  });
}
