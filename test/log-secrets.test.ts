/**
 * The logs of a full run at debug level — OAuth 1.0a and Bearer forwards with override headers and bodies,
 * refused credentials of every kind, certificate upload, mappings, the mapping check and job polling —
 * hold no secret: no consumer or JWT secret, no token, no OAuth signature, no override header value, no
 * private key, no master key.
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
import { oauthHeader, oauthParam, testConsumer } from './support/auth.ts';

const account = `ls${randomBytes(3).toString('hex')}`;
const consumer = testConsumer('logger', ['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'], ['*']);
const override = `Bearer override-${randomBytes(12).toString('hex')}`;
const bodySecret = `body-secret-${randomBytes(12).toString('hex')}`;

let relay: Relay;
let target: MtlsTarget;
let client: Issued;
let expiredToken: string;
/** Every secret the run used; none may appear in any log output. */
const secrets = new Set<string>();

async function send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<number> {
  const res = await request(`${relay.api.url}${path}`, { method: method as 'GET', headers, body: body ?? null });
  await res.body.dump();
  return res.statusCode;
}

function signed(method: string, path: string, form?: Record<string, string>): string {
  const header = oauthHeader(consumer, { method, url: `${relay.api.url}${path}`, ...(form === undefined ? {} : { form }) });
  const signature = oauthParam(header, 'oauth_signature');
  secrets.add(signature);
  secrets.add(encodeURIComponent(signature));
  return header;
}

beforeAll(async () => {
  const serverCa = await createCA('logs-target-ca');
  const clientCa = await createCA('logs-client-ca');
  const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  client = await issueCertificate(clientCa, { commonName: 'logs-client', usage: 'client' });
  target = await startMtlsTarget({ server: serverCert, clientCa: clientCa.certPem, requireClientCert: false });
  relay = await startRelay({ targetCaPem: serverCa.certPem, env: { OAUTH_CONSUMERS: JSON.stringify([consumer]), LOG_LEVEL: 'debug' } });
  const jwtSecret = relay.env['AUTH_JWT_SECRET'] as string;
  secrets.add(consumer.secret);
  secrets.add(jwtSecret);
  secrets.add(relay.masterKey);
  secrets.add(override.slice('Bearer '.length));
  secrets.add(bodySecret);
  secrets.add(relay.auth()['authorization']!.slice('Bearer '.length));
  // The base64 body of the private key, line by line: a key must not leak even in part.
  for (const line of client.keyPem.split('\n').filter((l) => l.length > 40 && !l.startsWith('-----'))) secrets.add(line);
  // Expired beyond the clock skew.
  expiredToken = await mintToken({ secret: jwtSecret, roles: ['admin'], accounts: ['*'], ttlSeconds: -600 });
  secrets.add(expiredToken);
});

afterAll(async () => {
  await relay?.close();
  await target?.close();
});

describe('log output of a full run', () => {
  it('when every kind of request and refusal has gone through at debug level, then no secret, signature, token or override header is in the logs', async () => {
    const to = { 'lp-forward-url': `${target.url}/echo`, 'lp-authorization-override': override };
    const admin = relay.auth();

    // Certificate and mapping management through the API (the private key travels in a request body).
    const created = await request(`${relay.api.url}/accounts/${account}/access/certificates`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'logs', certificate: client.chainPem, private_key: client.keyPem }),
    });
    expect(created.statusCode).toBe(201);
    const certId = ((await created.body.json()) as { result: { id: string } }).result.id;
    expect(await send('POST', `/mtls/account/${account}/mappings`, { ...admin, 'content-type': 'application/json' },
      JSON.stringify({ serviceName: 'svc', url: `${target.url}/echo`, certificateId: certId }))).toBe(201);

    // Accepted forwards: OAuth GET with a query, OAuth form POST, OAuth JSON POST, Bearer POST.
    const path = `/mtls/account/${account}`;
    expect(await send('GET', `${path}?q=${bodySecret}`, { ...to, 'lp-service-name': 'svc', authorization: signed('GET', `${path}?q=${bodySecret}`) })).toBe(200);
    const form = { secret: bodySecret };
    expect(await send('POST', path, { ...to, 'content-type': 'application/x-www-form-urlencoded', authorization: signed('POST', path, form) }, new URLSearchParams(form).toString())).toBe(200);
    expect(await send('POST', path, { ...to, 'content-type': 'application/json', authorization: signed('POST', path) }, JSON.stringify({ bodySecret }))).toBe(200);
    expect(await send('POST', path, { ...to, ...admin }, bodySecret)).toBe(200);

    // Refusals: a replay, a tampered signature, an expired token, alg none, a garbage scheme.
    const replayed = signed('GET', path);
    expect(await send('GET', path, { ...to, authorization: replayed })).toBe(200);
    expect(await send('GET', path, { ...to, authorization: replayed })).toBe(401);
    expect(await send('GET', path, { ...to, authorization: replayed.replace(/oauth_nonce="[^"]*"/, 'oauth_nonce="x"') })).toBe(401);
    expect(await send('GET', path, { ...to, authorization: `Bearer ${expiredToken}` })).toBe(401);
    expect(await send('GET', path, { ...to, authorization: `Bearer eyJhbGciOiJub25lIn0.${Buffer.from('{"roles":["admin"]}').toString('base64url')}.` })).toBe(401);
    expect(await send('GET', path, { ...to, authorization: `Basic ${Buffer.from(`u:${bodySecret}`).toString('base64')}` })).toBe(401);

    // The mapping check and job polling.
    expect(await send('POST', '/mtls/mapping', { ...admin, 'content-type': 'application/json' }, JSON.stringify([{ accountId: account, serviceName: 'svc', url: `${target.url}/echo` }]))).toBe(200);
    const accepted = await request(`${relay.api.url}${path}`, { method: 'POST', headers: { ...to, ...admin, prefer: 'respond-async' }, body: bodySecret });
    const { jobId } = (await accepted.body.json()) as { jobId: string };
    await target.waitForRequests(5);
    await expect.poll(async () => {
      const res = await request(`${relay.api.url}/mtls/jobs/${jobId}/response`, { headers: admin });
      await res.body.dump();
      return res.statusCode;
    }, { timeout: 15_000 }).toBe(200);

    // Stop the processes so that every log line is flushed, then read everything they wrote.
    await Promise.all([relay.api.stop(), ...relay.workers.map((w) => w.stop())]);
    const output = [relay.api, ...relay.workers].flatMap((p) => p.output).join('');
    expect(output.length).toBeGreaterThan(1000);
    expect(relay.api.logs.some((l) => l.msg === 'request refused by authentication')).toBe(true);
    expect(relay.api.logs.some((l) => l.msg === 'authenticated' && l['principal'] === consumer.key)).toBe(true);
    for (const secret of secrets) expect(output.includes(secret), `a secret (${secret.slice(0, 6)}…) is in the logs`).toBe(false);
    expect(output).not.toMatch(/oauth_signature/i);
    expect(output).not.toMatch(/Bearer\s+[A-Za-z0-9]/);
    expect(output).not.toMatch(/PRIVATE KEY/);
  });
});
