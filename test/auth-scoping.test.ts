/**
 * Account scoping: credentials limited to some accounts (OAuth consumers' `accounts`, the JWT accounts
 * claim) act on those accounts only — forwards, the mapping check, certificate, settings and mapping
 * management, and job polling. Refusals happen before anything is enqueued or stored.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { mintToken } from '../scripts/lib/tokens.ts';
import { oauthHeader, queuedJobs, testConsumer } from './support/auth.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const mine = `m${randomBytes(3).toString('hex')}`;
const theirs = `t${randomBytes(3).toString('hex')}`;
const scopedConsumer = testConsumer('scoped', ['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'], [mine]);
const scopedReader = testConsumer('scoped-reader', ['MTLS_READ_INTERNAL'], [mine]);

let relay: Relay;
let target: MtlsTarget;
let client: Issued;
let theirCertId: string;
let scopedToken: string;
let theirToken: string;
let noAccountsToken: string;

/** Credentials: 'oauth' (the scoped consumer), 'reader' (scoped, read-only), 'jwt' (token for `mine`), 'their-jwt', 'admin'. */
type Who = 'oauth' | 'reader' | 'jwt' | 'their-jwt' | 'no-accounts' | 'admin';

async function call(who: Who, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const url = `${relay.api.url}${path}`;
  const auth: Record<string, string> =
    who === 'oauth' ? { authorization: oauthHeader(scopedConsumer, { method, url }) }
    : who === 'reader' ? { authorization: oauthHeader(scopedReader, { method, url }) }
    : who === 'jwt' ? { authorization: `Bearer ${scopedToken}` }
    : who === 'their-jwt' ? { authorization: `Bearer ${theirToken}` }
    : who === 'no-accounts' ? { authorization: `Bearer ${noAccountsToken}` }
    : relay.auth();
  const res = await request(url, {
    method: method as 'GET',
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

const forwardTo = (who: Who, account: string, method = 'GET', extra: Record<string, string> = {}): Promise<Answer> =>
  call(who, method, `/mtls/account/${account}`, method === 'GET' ? undefined : '{"x":1}', { 'lp-forward-url': `${target.url}/echo`, ...extra });

beforeAll(async () => {
  const serverCa = await createCA('scoping-target-ca');
  const clientCa = await createCA('scoping-client-ca');
  const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  client = await issueCertificate(clientCa, { commonName: 'scoping-client', usage: 'client' });
  target = await startMtlsTarget({ server: serverCert, clientCa: clientCa.certPem, requireClientCert: false });
  relay = await startRelay({ targetCaPem: serverCa.certPem, env: { OAUTH_CONSUMERS: JSON.stringify([scopedConsumer, scopedReader]) } });
  const secret = relay.env['AUTH_JWT_SECRET'] as string;
  scopedToken = await mintToken({ secret, roles: ['lpa'], accounts: [mine], ttlSeconds: 3600 });
  theirToken = await mintToken({ secret, roles: ['admin'], accounts: [theirs], ttlSeconds: 3600 });
  noAccountsToken = await mintToken({ secret, roles: ['admin'], accounts: [], ttlSeconds: 3600 });
  const c = await relay.store.createCertificate(theirs, { name: 'theirs', certificate: client.chainPem, privateKey: client.keyPem });
  theirCertId = c.id;
});

afterAll(async () => {
  await relay?.close();
  await target?.close();
});

describe('account scoping of forwards', () => {
  it.each(['oauth', 'jwt'] as const)('when %s credentials for one account forward to it, then it passes', async (who) => {
    expect((await forwardTo(who, mine)).status).toBe(200);
  });

  it.each([
    ['oauth', 'GET'],
    ['oauth', 'POST'],
    ['jwt', 'GET'],
    ['jwt', 'DELETE'],
    ['no-accounts', 'GET'],
  ] as const)('when %s credentials %s to another account, then 403, nothing is enqueued and the target sees nothing', async (who, method) => {
    target.reset();
    const before = await queuedJobs(relay);
    const res = await forwardTo(who, theirs, method);
    expect(res.status, res.text).toBe(403);
    expect(res.json()).toMatchObject({ code: 'forbidden' });
    expect(await queuedJobs(relay)).toBe(before);
    expect(target.requests).toHaveLength(0);
  });
});

describe('account scoping of the mapping check (a read)', () => {
  const tuple = (accountId: string): Record<string, string> => ({ accountId, serviceName: 'svc', url: `${target.url}/x` });

  it('when a read-only consumer checks tuples of its account, then 200 (POST /mtls/mapping counts as a read)', async () => {
    const res = await call('reader', 'POST', '/mtls/mapping', [tuple(mine)]);
    expect(res.status, res.text).toBe(200);
  });

  it.each(['reader', 'jwt'] as const)('when %s credentials include a tuple of another account, then 403 and no mapping job is enqueued', async (who) => {
    const before = await queuedJobs(relay);
    const res = await call(who, 'POST', '/mtls/mapping', [tuple(mine), tuple(theirs)]);
    expect(res.status, res.text).toBe(403);
    expect(await queuedJobs(relay)).toBe(before);
  });
});

describe('account scoping of certificate, settings and mapping management', () => {
  const certs = (account: string): string => `/accounts/${account}/access/certificates`;

  it('when scoped credentials manage their own account, then they may', async () => {
    expect((await call('jwt', 'GET', certs(mine))).status).toBe(200);
    expect((await call('oauth', 'GET', `${certs(mine)}/settings`)).status).toBe(200);
    expect((await call('oauth', 'GET', `/mtls/account/${mine}/mappings`)).status).toBe(200);
  });

  const foreign = (): Array<[string, string, unknown]> => [
    ['GET', certs(theirs), undefined],
    ['POST', certs(theirs), { name: 'stolen', certificate: client.chainPem, private_key: client.keyPem }],
    ['GET', `${certs(theirs)}/${theirCertId}`, undefined],
    ['PUT', `${certs(theirs)}/${theirCertId}`, { name: 'renamed', associated_hostnames: ['evil.example.com'] }],
    ['DELETE', `${certs(theirs)}/${theirCertId}`, undefined],
    ['GET', `${certs(theirs)}/settings`, undefined],
    ['PUT', `${certs(theirs)}/settings`, { settings: [{ hostname: 'a.example.com', china_network: false, client_certificate_forwarding: true }] }],
    ['GET', `/mtls/account/${theirs}/mappings`, undefined],
    ['POST', `/mtls/account/${theirs}/mappings`, { serviceName: 's', url: 'https://a.example.com/', certificateId: theirCertId }],
    ['DELETE', `/mtls/account/${theirs}/mappings/whatever`, undefined],
  ];

  it.each(['oauth', 'jwt'] as const)('when %s credentials touch another account\'s certificates, settings or mappings, then 403 and nothing changes', async (who) => {
    for (const [method, path, body] of foreign()) {
      const res = await call(who, method, path, body);
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(403);
      if (path.startsWith('/accounts/')) expect(res.json()).toMatchObject({ success: false, errors: [{ code: 10001 }] });
      else expect(res.json()).toMatchObject({ code: 'forbidden' });
    }
    const list = await relay.store.listCertificates(theirs);
    expect(list.map((c) => [c.id, c.name, [...c.associatedHostnames]])).toEqual([[theirCertId, 'theirs', []]]);
    expect(await relay.store.listMappings(theirs)).toEqual([]);
    expect(await relay.store.getSettings(theirs)).toEqual([]);
  });
});

describe('account scoping of job polling', () => {
  async function asyncJob(who: Who, account: string): Promise<string> {
    const res = await forwardTo(who, account, 'GET', { prefer: 'respond-async' });
    expect(res.status, res.text).toBe(202);
    return (res.json() as { jobId: string }).jobId;
  }

  it('when a job belongs to another account, then its status and response are 404 to scoped credentials and visible to allowed ones', async () => {
    const theirJob = await asyncJob('their-jwt', theirs);
    const myJob = await asyncJob('oauth', mine);
    for (const who of ['oauth', 'jwt', 'no-accounts'] as const) {
      expect((await call(who, 'GET', `/mtls/jobs/${theirJob}`)).status).toBe(404);
      expect((await call(who, 'GET', `/mtls/jobs/${theirJob}/response`)).status).toBe(404);
    }
    expect((await call('their-jwt', 'GET', `/mtls/jobs/${myJob}`)).status).toBe(404);
    for (const [who, job] of [['their-jwt', theirJob], ['admin', theirJob], ['jwt', myJob], ['oauth', myJob], ['admin', myJob]] as const) {
      const res = await call(who, 'GET', `/mtls/jobs/${job}`);
      expect(res.status, `${who} ${job}`).toBe(200);
      expect(res.json()).toMatchObject({ id: job });
    }
  });

  it('when job polling has no credentials, then 401', async () => {
    const res = await request(`${relay.api.url}/mtls/jobs/${randomBytes(16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5')}`);
    expect(res.statusCode).toBe(401);
    await res.body.dump();
  });
});
