/**
 * The OpenAPI document: it lints clean with Redocly, it documents exactly the routes the app serves, /openapi.json
 * and /docs serve it, and every operation, called for real (successes and errors), answers as documented.
 */
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import pino from 'pino';
import { createKeyRing } from '../packages/shared/src/crypto.ts';
import { FORWARD_METHODS } from '../packages/shared/src/jobs.ts';
import { CertificateStore, EmbeddedBackend } from '../packages/shared/src/store/index.ts';
import { createApp } from '../services/api/src/app.ts';
import { IdempotencyKeys } from '../services/api/src/queueing/idempotency.ts';
import { ForwardDispatcher } from '../services/api/src/queueing/dispatch.ts';
import { ForwardRecords } from '../packages/shared/src/forward-records.ts';
import { JobQueues } from '../services/api/src/queueing/queue.ts';
import { ResultWaiter } from '../services/api/src/queueing/waiter.ts';
import { openApiDocument } from '../services/api/src/openapi/document.ts';
import { assertMatchesOpenApi, openApiChecked, takeOpenApiViolations, watchApi } from './support/openapi.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { freePort } from '../scripts/lib/ports.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
let relay: Relay;
let target: MtlsTarget;
let clientCa: CA;
const account = `oa${randomBytes(3).toString('hex')}`;
let checked = 0;

/** Calls the api and checks the answer against the document; returns it for further assertions. */
async function call(method: string, path: string, opts: { headers?: Record<string, string>; body?: string; auth?: boolean } = {}) {
  const res = await request(`${relay.api.url}${path}`, {
    method: method as Dispatcher.HttpMethod,
    headers: { ...(opts.auth === false ? {} : relay.auth()), ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers },
    body: opts.body ?? null,
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  assertMatchesOpenApi(method, path, res.statusCode, res.headers, body);
  checked += 1;
  return { status: res.statusCode, headers: res.headers, text: body.toString('utf8') };
}

describe('the OpenAPI document', () => {
  beforeAll(async () => {
    const serverCa = await createCA('openapi-server-ca');
    clientCa = await createCA('openapi-client-ca');
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false });
    relay = await startRelay({ targetCaPem: serverCa.certPem });
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
  });

  it('lints clean with Redocly (recommended rules: no error, no warning)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(openApiDocument()));
      const r = spawnSync('redocly', ['lint', file, '--format=json'], { encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
      const report = JSON.parse(r.stdout) as { totals: { errors: number; warnings: number }; problems: Array<{ message: string }> };
      expect(report.problems.map((p) => p.message)).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('documents exactly the routes the app serves', async () => {
    const redis = relay.redis.client();
    const logger = pino({ level: 'silent' });
    const ring = createKeyRing(randomBytes(32));
    const queues = new JobQueues(redis, { prefix: 'openapi-routes', resultTtlSeconds: 60 }, logger);
    const idempotency = new IdempotencyKeys(redis, 'openapi-routes');
    const waiter = new ResultWaiter(redis, 'openapi-routes:reply', async () => null, logger);
    const app = createApp({
      logger, ring, queues, idempotency, waiter,
      store: new CertificateStore(new EmbeddedBackend(redis, ring, 'openapi-routes')),
      records: new ForwardRecords(redis, 'openapi-routes'),
      dispatcher: new ForwardDispatcher({ ring, queues, waiter, idempotency, logger }, { forwardAttempts: 1, resultTtlSeconds: 60, maxBatchBytes: 1024 * 1024, maxInFlight: 1, admissionMs: 5_000, maxPending: 100 }),
      checkTarget: () => undefined,
      bodyLimitBytes: 1024, syncWaitMs: 1000, allowHttp: false, readiness: [], isShuttingDown: () => false,
    });
    try {
      const served = new Set<string>();
      const walk = (stack: Array<{ route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: unknown[] } }>): void => {
        for (const layer of stack) {
          if (layer.route !== undefined) {
            const methods = Object.keys(layer.route.methods).flatMap((m) => (m === '_all' ? FORWARD_METHODS.map((f) => f.toLowerCase()) : [m]));
            for (const m of methods) served.add(`${m} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
          } else if (Array.isArray(layer.handle?.stack)) {
            walk(layer.handle.stack as never);
          }
        }
      };
      walk((app as unknown as { router: { stack: never[] } }).router.stack);
      // Swagger UI's own files under /docs, the console's under /console, and bull-board's internals under
      // /admin/queues (mounted, not routes here).
      served.delete('get /docs/{asset}');
      served.delete('get /console/{asset}');
      const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
      documented.delete('get /metrics'); // only with the metrics dependency, which this bare app has not
      documented.delete('get /admin/queues'); // bull-board's router, mounted with use()
      expect([...served].sort()).toEqual([...documented].sort());
    } finally {
      await queues.close();
    }
  });

  it('/openapi.json serves the document and /docs renders it from bundled assets (no CDN)', async () => {
    const served = await call('GET', '/openapi.json', { auth: false });
    expect(JSON.parse(served.text)).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    expect(JSON.parse(served.text).openapi).toBe('3.1.0');
    const errors = await call('GET', '/docs/errors', { auth: false });
    expect(errors.text).toContain('id="invalid_certificate"');
    const page = await call('GET', '/docs', { auth: false });
    expect(page.text).toContain('SwaggerUIBundle');
    expect(page.text).not.toMatch(/https?:\/\//);
    const bundle = await request(`${relay.api.url}/docs/swagger-ui-bundle.js`);
    expect(bundle.statusCode).toBe(200);
    expect(bundle.headers['content-type']).toMatch(/javascript/);
    await bundle.body.dump();
    // Only the bundled files are served, nothing else of the package's folder.
    const other = await request(`${relay.api.url}/docs/..%2Fpackage.json`, { headers: relay.auth() });
    expect(other.statusCode).toBe(404);
    expect(other.headers['content-type']).toMatch(/problem\+json/);
    await other.body.dump();
  });

  it('every operation, called for real, answers as documented (successes and errors)', async () => {
    await call('GET', '/healthz', { auth: false });
    await call('GET', '/readyz', { auth: false });
    await call('GET', '/metrics');
    await call('GET', '/metrics', { auth: false });
    await call('GET', '/admin/queues');
    await call('GET', '/admin/queues', { auth: false });
    expect((await call('GET', '/console', { auth: false })).status).toBe(200);
    expect(JSON.parse((await call('GET', '/mtls/whoami')).text)).toMatchObject({ accounts: '*', administrator: true });
    expect((await call('GET', '/mtls/whoami', { auth: false })).status).toBe(401);

    // Certificates and settings (Cloudflare envelope), then mappings.
    const leaf = await issueCertificate(clientCa, { commonName: 'openapi-client', usage: 'client' });
    const base = `/accounts/${account}/access/certificates`;
    const created = await call('POST', base, { body: JSON.stringify({ name: 'oa', certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: ['localhost'] }) });
    expect(created.status).toBe(201);
    const certId = (JSON.parse(created.text) as { result: { id: string } }).result.id;
    expect((await call('POST', base, { body: JSON.stringify({ name: 'oa', certificate: leaf.chainPem, private_key: leaf.keyPem }) })).status).toBe(409);
    expect((await call('POST', base, { body: JSON.stringify({ name: 'bad', certificate: 'not a pem', private_key: 'x' }) })).status).toBe(400);
    expect((await call('GET', base, { auth: false })).status).toBe(401);
    expect((await call('GET', `${base}?per_page=10`)).status).toBe(200);
    expect((await call('GET', `${base}/${certId}`)).status).toBe(200);
    expect((await call('GET', `${base}/nope`)).status).toBe(404);
    expect((await call('PUT', `${base}/${certId}`, { body: JSON.stringify({ name: 'oa2', associated_hostnames: ['localhost'] }) })).status).toBe(200);
    expect((await call('GET', `${base}/settings`)).status).toBe(200);
    expect((await call('PATCH', `${base}/${certId}`, { body: '{}' })).status).toBe(405);
    const root = await call('POST', base, { body: JSON.stringify({ name: 'oa-root', certificate: clientCa.certPem, associated_hostnames: ['example.com'] }) });
    expect(root.status).toBe(201);
    expect((await call('PUT', `${base}/settings`, { body: JSON.stringify({ settings: [{ hostname: 'localhost', china_network: false, client_certificate_forwarding: false }] }) })).status).toBe(202);

    const mappings = `/mtls/account/${account}/mappings`;
    const mapping = await call('POST', mappings, { body: JSON.stringify({ serviceName: 'oa', url: `${target.url}/mapped`, certificateId: certId }) });
    expect(mapping.status).toBe(201);
    const mappingId = (JSON.parse(mapping.text) as { id: string }).id;
    expect((await call('POST', mappings, { body: JSON.stringify({ serviceName: 'oa', url: `${target.url}/mapped`, certificateId: certId }) })).status).toBe(409);
    expect((await call('POST', mappings, { body: JSON.stringify({ serviceName: 'oa', url: `${target.url}/x`, certificateId: 'missing' }) })).status).toBe(404);
    expect((await call('GET', mappings)).status).toBe(200);
    expect((await call('GET', `${mappings}/${mappingId}`)).status).toBe(200);
    const tuples = JSON.stringify([{ accountId: account, serviceName: 'oa', url: `${target.url}/mapped` }, { accountId: account, serviceName: 'other', url: 'https://unmapped.invalid/' }]);
    expect(JSON.parse((await call('POST', '/mtls/mapping', { body: tuples })).text)).toEqual({
      [`CertificateMappingParamters{serviceName='oa', accountId='${account}', url='${target.url}/mapped'}`]: true,
      [`CertificateMappingParamters{serviceName='other', accountId='${account}', url='https://unmapped.invalid/'}`]: false,
    });
    expect((await call('POST', '/mtls/mapping?v=2', { body: tuples })).status).toBe(200);
    expect((await call('POST', '/mtls/mapping', { body: '{"not":"an array"}' })).status).toBe(400);

    // Forwards: the target's answers, async acceptance, the relay's own errors; then the job routes.
    const forward = `/mtls/account/${account}`;
    for (const method of FORWARD_METHODS) {
      const res = await call(method, forward, { headers: { 'lp-forward-url': `${target.url}/mapped`, 'lp-service-name': 'oa' }, ...(method === 'GET' ? {} : { body: '{"n":1}' }) });
      expect(res.status).toBe(200);
      expect(res.headers['lp-mtls']).toBe('used');
    }
    const accepted = await call('POST', forward, { headers: { 'lp-forward-url': `${target.url}/async`, prefer: 'respond-async' }, body: '{}' });
    expect(accepted.status).toBe(202);
    const jobId = (JSON.parse(accepted.text) as { jobId: string }).jobId;
    expect((await call('GET', forward, { headers: {} })).status).toBe(400);
    expect((await call('GET', forward, { auth: false, headers: { 'lp-forward-url': `${target.url}/x` } })).status).toBe(401);
    expect((await call('GET', forward, { headers: { 'lp-forward-url': 'https://169.254.169.254/latest' } })).status).toBe(403);
    expect((await call('GET', forward, { headers: { 'lp-forward-url': `https://127.0.0.1:${await freePort()}/`, 'lp-stop-if-certificate-not-found': 'true' } })).status).toBe(422);
    expect((await call('GET', forward, { headers: { 'lp-forward-url': `https://127.0.0.1:${await freePort()}/` } })).status).toBe(502);

    await vi.waitFor(async () => expect(JSON.parse((await call('GET', `/mtls/jobs/${jobId}`)).text).state).toBe('completed'), { timeout: 10_000, interval: 100 });
    expect((await call('GET', `/mtls/jobs/${jobId}/response`)).status).toBe(200);
    expect((await call('GET', `/mtls/jobs/${randomUUID()}`)).status).toBe(404);
    expect((await call('GET', `/mtls/jobs/${randomUUID()}/response`)).status).toBe(404);

    expect((await call('DELETE', `${mappings}/${mappingId}`)).status).toBe(204);
    expect((await call('GET', `${mappings}/${mappingId}`)).status).toBe(404);
    expect((await call('DELETE', `${base}/${certId}`)).status).toBe(200);
    expect(checked).toBeGreaterThanOrEqual(40);
  });

  it('an invalid account id answers 400 as documented on every route that takes one (found by schemathesis)', async () => {
    // A control character, a non-ASCII letter, a leading "_": each was a 400 the document did not list.
    for (const bad of ['%16', '%C3%91x', '__main__']) {
      for (const [method, path] of [
        ['GET', `/mtls/account/${bad}/mappings`],
        ['GET', `/mtls/account/${bad}/mappings/m1`],
        ['DELETE', `/mtls/account/${bad}/mappings/m1`],
        ['GET', `/accounts/${bad}/access/certificates`],
        ['GET', `/accounts/${bad}/access/certificates/settings`],
        ['GET', `/accounts/${bad}/access/certificates/c1`],
        ['DELETE', `/accounts/${bad}/access/certificates/c1`],
      ] as const) {
        expect((await call(method, path)).status, `${method} ${path}`).toBe(400);
      }
    }
  });

  it('the suite-wide check sees every api response, and records one the document does not describe', async () => {
    const before = openApiChecked();
    await request(`${relay.api.url}/healthz`).then((r) => r.body.dump());
    expect(openApiChecked()).toBe(before + 1);
    // A stand-in "api" that answers /healthz with an undocumented shape.
    const fake = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"fine"}'));
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      watchApi(url);
      await request(`${url}/healthz`).then((r) => r.body.text());
      const seen = takeOpenApiViolations();
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatch(/^GET \/healthz → 200: OpenAPI: GET \/healthz 200 \(application\/json\) body does not match/);
    } finally {
      fake.close();
    }
  });

  it('a response the document does not describe is refused (the check can fail)', () => {
    expect(() => assertMatchesOpenApi('GET', '/healthz', 200, { 'content-type': 'application/json' }, '{"status":"fine"}')).toThrow(/does not match/);
    expect(() => assertMatchesOpenApi('GET', '/readyz', 200, { 'content-type': 'text/html' }, '<p>')).toThrow(/content-type/);
    expect(() => assertMatchesOpenApi('GET', '/nowhere', 200, {}, '')).toThrow(/no documented path/);
    expect(() => assertMatchesOpenApi('GET', '/nowhere', 404, { 'content-type': 'text/html' }, '<h1>')).toThrow(/content-type/);
    assertMatchesOpenApi('GET', '/nowhere', 404, { 'content-type': 'application/problem+json' }, JSON.stringify({ type: 'urn:mtls-relay:problem:not_found', title: 'Not found', status: 404, code: 'not_found' }));
    expect(() => assertMatchesOpenApi('GET', `/mtls/jobs/${randomUUID()}`, 418, {}, '')).toThrow(/status 418/);
    expect(() => assertMatchesOpenApi('GET', '/accounts/a/access/certificates/c', 200, { 'content-type': 'application/json' }, JSON.stringify({
      success: true, errors: [], messages: [], result: { id: 'c', name: 'n', fingerprint: 'f', expires_on: '2030-01-01T00:00:00Z', associated_hostnames: [], created_at: '2030-01-01T00:00:00Z', updated_at: '2030-01-01T00:00:00Z', private_key: 'LEAK' },
    }))).toThrow(/does not match/);
  });
});
