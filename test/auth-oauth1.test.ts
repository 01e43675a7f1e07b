/**
 * OAuth 1.0a against the real api process: requests signed by an independent client library (oauth-1.0a)
 * are accepted; tampering, stale timestamps, replays and missing permissions are refused before anything
 * is enqueued, and the target never sees them.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startService } from './support/services.ts';
import type { ServiceProcess } from './support/services.ts';
import { oauthHeader, oauthParam, oauthProtocolParams, queuedJobs, testConsumer, withOAuthParam } from './support/auth.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

let relay: Relay;
let target: MtlsTarget;
let proxied: ServiceProcess;
const account = `oa${randomBytes(3).toString('hex')}`;
const other = `ob${randomBytes(3).toString('hex')}`;
const writer = testConsumer('writer', ['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'], ['*']);
const reader = testConsumer('reader', ['MTLS_READ_INTERNAL'], ['*']);

async function send(base: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const res = await request(`${base}${path}`, { method: method as 'GET', headers, body: body ?? null });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** Signs `method path` (with `form` as a urlencoded body when given) and sends it with LP-forward-url set. */
async function signedForward(
  consumer: { key: string; secret: string },
  method: string,
  path: string,
  opts: { form?: Record<string, string>; body?: string; contentType?: string; signatureMethod?: 'HMAC-SHA1' | 'HMAC-SHA256' } = {},
): Promise<Answer> {
  const authorization = oauthHeader(consumer, { method, url: `${relay.api.url}${path}`, ...(opts.form === undefined ? {} : { form: opts.form }) }, opts.signatureMethod);
  const headers: Record<string, string> = { authorization, 'lp-forward-url': `${target.url}/echo` };
  let body = opts.body;
  if (opts.form !== undefined) {
    body = new URLSearchParams(opts.form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
  return send(relay.api.url, method, path, headers, body);
}

function expectUnauthenticated(res: Answer, detail?: RegExp): void {
  expect(res.status, res.text).toBe(401);
  expect(String(res.headers['www-authenticate'])).toMatch(/OAuth realm="mtls-relay"/);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(res.text) as { code: string; detail: string };
  expect(problem.code).toBe('unauthenticated');
  if (detail !== undefined) expect(problem.detail).toMatch(detail);
}

beforeAll(async () => {
  const serverCa = await createCA('oauth-target-ca');
  const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  target = await startMtlsTarget({ server: serverCert, clientCa: serverCa.certPem, requireClientCert: false });
  relay = await startRelay({ targetCaPem: serverCa.certPem, env: { OAUTH_CONSUMERS: JSON.stringify([writer, reader]) } });
  // A second api process of the same relay that sits behind a (trusted) reverse proxy.
  proxied = await startService('api', { ...relay.env, TRUST_PROXY: 'true' });
});

afterAll(async () => {
  await proxied?.stop();
  await relay?.close();
  await target?.close();
});

describe('OAuth 1.0a requests signed by the oauth-1.0a package', () => {
  it.each(['HMAC-SHA1', 'HMAC-SHA256'] as const)('when a GET with a query string is signed with %s, then it is forwarded', async (signatureMethod) => {
    target.reset();
    const res = await signedForward(writer, 'GET', `/mtls/account/${account}?page=2&q=a%20b&empty=&tilde=~x`, { signatureMethod });
    expect(res.status, res.text).toBe(200);
    expect(res.headers['lp-mtls']).toBe('none');
    expect(target.requests).toHaveLength(1);
    expect(target.requests[0]?.method).toBe('GET');
    // The relay's own Authorization never reaches the target.
    expect(target.requests[0]?.headers['authorization']).toBeUndefined();
  });

  it('when a POST with a JSON body is signed, then it is forwarded with the body byte for byte', async () => {
    target.reset();
    const body = JSON.stringify({ amount: 12.5, note: 'ünïcode & = +' });
    const res = await signedForward(writer, 'POST', `/mtls/account/${account}`, { body, contentType: 'application/json' });
    expect(res.status, res.text).toBe(200);
    expect(target.requests[0]?.body.toString('utf8')).toBe(body);
  });

  it('when a POST with a form body is signed (the form fields are part of the signature), then it is forwarded byte for byte', async () => {
    target.reset();
    const form = { name: 'a b+c', 'x&y': '1=2', snow: '☃', empty: '' };
    const res = await signedForward(writer, 'POST', `/mtls/account/${account}?v=1`, { form });
    expect(res.status, res.text).toBe(200);
    const seen = target.requests[0];
    expect(seen?.body.toString('utf8')).toBe(new URLSearchParams(form).toString());
    expect(seen?.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it('when the scheme and host the caller used come through a trusted proxy (TRUST_PROXY), then the signature covers those', async () => {
    target.reset();
    const path = `/mtls/account/${account}?via=proxy`;
    const authorization = oauthHeader(writer, { method: 'GET', url: `https://relay.example.com${path}` });
    const headers = { authorization, 'lp-forward-url': `${target.url}/echo`, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'relay.example.com' };
    expect((await send(proxied.url, 'GET', path, headers)).status).toBe(200);
    // Without TRUST_PROXY the forwarded headers are ignored: the signature does not match the URL used.
    const again = oauthHeader(writer, { method: 'GET', url: `https://relay.example.com${path}` });
    expectUnauthenticated(await send(relay.api.url, 'GET', path, { ...headers, authorization: again }), /signature/);
  });
});

describe('OAuth 1.0a parameters in the query string or a form body (RFC 5849 §3.5.2, §3.5.3)', () => {
  const form = { amount: '10', note: 'two words & more' };
  const formBody = new URLSearchParams(form).toString();

  it('when the signed parameters come in the query string, then it is forwarded and the target sees none of them', async () => {
    target.reset();
    const path = `/mtls/account/${account}?keep=1`;
    const params = new URLSearchParams(oauthProtocolParams(writer, { method: 'GET', url: `${relay.api.url}${path}` })).toString();
    const res = await send(relay.api.url, 'GET', `${path}&${params}`, { 'lp-forward-url': `${target.url}/echo?x=1` });
    expect(res.status, res.text).toBe(200);
    expect(target.requests.map((r) => r.path)).toEqual(['/echo?x=1']);
    expect(JSON.stringify(target.requests[0]?.headers)).not.toMatch(/oauth_/);
  });

  it('when the signed parameters come in the form body, then it is forwarded with the other fields byte for byte and without them', async () => {
    target.reset();
    const path = `/mtls/account/${account}`;
    const params = new URLSearchParams(oauthProtocolParams(writer, { method: 'POST', url: `${relay.api.url}${path}`, form })).toString();
    const headers = { 'lp-forward-url': `${target.url}/echo`, 'content-type': 'application/x-www-form-urlencoded' };
    const res = await send(relay.api.url, 'POST', path, headers, `${formBody}&${params}`);
    expect(res.status, res.text).toBe(200);
    expect(target.requests[0]?.body.toString('utf8')).toBe(formBody);
  });

  it('when a query or body parameter is tampered with, replayed, or the parameters are split over both, then 401 and the target sees nothing', async () => {
    target.reset();
    const path = `/mtls/account/${account}`;
    const headers = { 'lp-forward-url': `${target.url}/echo`, 'content-type': 'application/x-www-form-urlencoded' };
    const signedQuery = new URLSearchParams(oauthProtocolParams(writer, { method: 'POST', url: `${relay.api.url}${path}?x=1`, form }));
    expectUnauthenticated(await send(relay.api.url, 'POST', `${path}?x=2&${signedQuery}`, headers, formBody), /signature/);
    expectUnauthenticated(await send(relay.api.url, 'POST', `${path}?x=1&${signedQuery}`, headers, formBody.replace('10', '99')), /signature/);

    const signedBody = new URLSearchParams(oauthProtocolParams(writer, { method: 'POST', url: `${relay.api.url}${path}`, form }));
    expect((await send(relay.api.url, 'POST', path, headers, `${formBody}&${signedBody}`)).status).toBe(200);
    expectUnauthenticated(await send(relay.api.url, 'POST', path, headers, `${formBody}&${signedBody}`), /nonce was already used/);

    const fresh = oauthProtocolParams(writer, { method: 'POST', url: `${relay.api.url}${path}`, form });
    const { oauth_signature: signature, ...rest } = fresh;
    const split = await send(relay.api.url, 'POST', `${path}?${new URLSearchParams({ oauth_signature: signature as string })}`, headers, `${formBody}&${new URLSearchParams(rest)}`);
    expectUnauthenticated(split, /one place/);
    expect(target.requests).toHaveLength(1);
  });
});

describe('signing from the command line (docs/auth.md)', () => {
  const doc = readFileSync(new URL('../docs/auth.md', import.meta.url), 'utf8');
  const recipe = /```bash\n(# oauth1-sign[\s\S]*?)```/.exec(doc)?.[1] ?? '';
  const sign = (method: string, url: string, body?: string): string =>
    execFileSync('bash', ['-c', `${recipe}\noauth1_sign "$@"`, 'oauth1_sign', method, url, ...(body === undefined ? [] : [body])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '', OAUTH_CONSUMER_KEY: writer.key, OAUTH_CONSUMER_SECRET: writer.secret },
    }).trim();

  it('when a GET with a query and a POST with a form body are signed with the documented bash + openssl functions, then both are forwarded', async () => {
    expect(recipe).toContain('oauth1_sign()');
    target.reset();
    const path = `/mtls/account/${account}?page=2&q=a%20b&z=&a=%C3%A9`;
    const get = await send(relay.api.url, 'GET', path, { authorization: sign('GET', `${relay.api.url}${path}`), 'lp-forward-url': `${target.url}/echo` });
    expect(get.status, get.text).toBe(200);
    const body = 'amount=10&note=hello+world&note=again&flag';
    const post = await send(relay.api.url, 'POST', `/mtls/account/${account}`, {
      authorization: sign('POST', `${relay.api.url}/mtls/account/${account}`, body),
      'content-type': 'application/x-www-form-urlencoded',
      'lp-forward-url': `${target.url}/echo`,
    }, body);
    expect(post.status, post.text).toBe(200);
    expect(target.requests.map((r) => r.body.toString())).toEqual(['', body]);
  });
});

describe('OAuth 1.0a refusals', () => {
  const path = `/mtls/account/${account}?x=1`;
  const form = { amount: '10', to: 'alice' };
  type Tamper = (h: string) => { method: string; path: string; authorization: string; body: string };
  const signed = (): string => oauthHeader(writer, { method: 'POST', url: `${relay.api.url}${path}`, form });
  const body = new URLSearchParams(form).toString();
  const cases: Array<[string, Tamper]> = [
    ['the method', (h) => ({ method: 'PUT', path, authorization: h, body })],
    ['the path', (h) => ({ method: 'POST', path: path.replace(account, other), authorization: h, body })],
    ['the query', (h) => ({ method: 'POST', path: path.replace('x=1', 'x=2'), authorization: h, body })],
    ['a form parameter', (h) => ({ method: 'POST', path, authorization: h, body: body.replace('alice', 'mallory') })],
    ['the timestamp', (h) => ({ method: 'POST', path, authorization: withOAuthParam(h, 'oauth_timestamp', String(Number(oauthParam(h, 'oauth_timestamp')) - 1)), body })],
    ['the nonce', (h) => ({ method: 'POST', path, authorization: withOAuthParam(h, 'oauth_nonce', 'another'), body })],
    ['the consumer secret', () => ({ method: 'POST', path, authorization: oauthHeader({ key: writer.key, secret: `${writer.secret}x` }, { method: 'POST', url: `${relay.api.url}${path}`, form }), body })],
    ['the consumer key', () => ({ method: 'POST', path, authorization: oauthHeader({ key: 'nobody', secret: writer.secret }, { method: 'POST', url: `${relay.api.url}${path}`, form }), body })],
  ];

  it.each(cases)('when %s is changed after signing, then 401, nothing is enqueued and the target sees nothing', async (_what, tamper) => {
    target.reset();
    const before = await queuedJobs(relay);
    const t = tamper(signed());
    const res = await send(relay.api.url, t.method, t.path, {
      authorization: t.authorization,
      'lp-forward-url': `${target.url}/echo`,
      'content-type': 'application/x-www-form-urlencoded',
    }, t.body);
    expectUnauthenticated(res, /signature is invalid or the consumer is unknown/);
    expect(await queuedJobs(relay)).toBe(before);
    expect(target.requests).toHaveLength(0);
  });

  it('when the timestamp is correctly signed but more than 300 s old or ahead, then 401', async () => {
    for (const offset of [-301, 301]) {
      const authorization = oauthHeader(writer, { method: 'GET', url: `${relay.api.url}${path}`, timestamp: Math.floor(Date.now() / 1000) + offset });
      expectUnauthenticated(await send(relay.api.url, 'GET', path, { authorization, 'lp-forward-url': `${target.url}/echo` }), /oauth_timestamp/);
    }
    // Within the window, skew is tolerated.
    const authorization = oauthHeader(writer, { method: 'GET', url: `${relay.api.url}${path}`, timestamp: Math.floor(Date.now() / 1000) - 200 });
    expect((await send(relay.api.url, 'GET', path, { authorization, 'lp-forward-url': `${target.url}/echo` })).status).toBe(200);
  });

  it('when a signed request is replayed, then the replay is 401; the nonce is kept in Redis for the window, hashed', async () => {
    const authorization = oauthHeader(writer, { method: 'GET', url: `${relay.api.url}${path}` });
    const headers = { authorization, 'lp-forward-url': `${target.url}/echo` };
    expect((await send(relay.api.url, 'GET', path, headers)).status).toBe(200);
    expectUnauthenticated(await send(relay.api.url, 'GET', path, headers), /nonce was already used/);
    const keys = await relay.client.keys(`${relay.prefix}:oauth-nonce:*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.some((k) => k.includes(oauthParam(authorization, 'oauth_nonce')))).toBe(false);
    const ttls = await Promise.all(keys.map((k) => relay.client.ttl(k)));
    expect(Math.max(...ttls)).toBeLessThanOrEqual(301);
    expect(Math.max(...ttls)).toBeGreaterThan(250);
  });

  it('when one signed request is replayed 20 times concurrently, then exactly one is accepted and the target sees it once', async () => {
    target.reset();
    const replayPath = `/mtls/account/${account}?burst=${randomBytes(4).toString('hex')}`;
    const authorization = oauthHeader(writer, { method: 'GET', url: `${relay.api.url}${replayPath}` });
    const headers = { authorization, 'lp-forward-url': `${target.url}/echo`, prefer: 'respond-async' };
    const answers = await Promise.all(Array.from({ length: 20 }, () => send(relay.api.url, 'GET', replayPath, headers)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(19);
    await target.waitForRequests(1);
    expect(target.requests).toHaveLength(1);
  });

  it('when credentials are missing, use another scheme or are malformed, then 401 with a challenge for each configured scheme', async () => {
    const cases: Array<Record<string, string>> = [
      {},
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: 'OAuth oauth_consumer_key=unquoted' },
      { authorization: `OAuth oauth_consumer_key="${writer.key}", oauth_signature_method="PLAINTEXT", oauth_timestamp="1", oauth_nonce="n", oauth_signature="x"` },
    ];
    for (const headers of cases) {
      const res = await send(relay.api.url, 'GET', path, { ...headers, 'lp-forward-url': `${target.url}/echo` });
      expectUnauthenticated(res);
      const challenges = ([] as string[]).concat(res.headers['www-authenticate'] ?? []).join(', ');
      expect(challenges).toMatch(/Bearer realm="mtls-relay"/);
    }
  });

  it('when the health, readiness or OpenAPI routes are called without credentials, then they are not refused', async () => {
    expect((await send(relay.api.url, 'GET', '/healthz', {})).status).toBe(200);
    expect((await send(relay.api.url, 'GET', '/readyz', {})).status).toBe(200);
    expect((await send(relay.api.url, 'GET', '/openapi.json', {})).status).not.toBe(401);
    expect((await send(relay.api.url, 'GET', '/mtls/jobs/00000000-0000-0000-0000-000000000000', {})).status).toBe(401);
  });
});

describe('OAuth 1.0a permissions', () => {
  it('when a read-only consumer GETs, then it is forwarded', async () => {
    target.reset();
    const res = await signedForward(reader, 'GET', `/mtls/account/${account}`);
    expect(res.status, res.text).toBe(200);
    expect(target.requests).toHaveLength(1);
  });

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('when a read-only consumer sends %s, then 403, nothing is enqueued and the target sees nothing', async (method) => {
    target.reset();
    const before = await queuedJobs(relay);
    const res = await signedForward(reader, method, `/mtls/account/${account}`, { body: '{"a":1}', contentType: 'application/json' });
    expect(res.status, res.text).toBe(403);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(JSON.parse(res.text)).toMatchObject({ code: 'forbidden', detail: `${method} needs the MTLS_WRITE_INTERNAL permission` });
    expect(await queuedJobs(relay)).toBe(before);
    expect(target.requests).toHaveLength(0);
  });
});
