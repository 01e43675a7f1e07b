/**
 * Bearer JWTs against the real api process: HS256 with the configured secret, RS256 from a JWKS endpoint,
 * ES256 from configured public keys; the attacks jose guards against (alg none, HS/RS confusion) and the
 * claim checks (exp, nbf, iss, aud, roles) are refused; an unreachable JWKS or a storm of unknown kids
 * gives 401, never 500, with at most one JWKS fetch per 30 s.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWTPayload } from 'jose';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { freePort } from '../scripts/lib/ports.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startService } from './support/services.ts';
import type { ServiceProcess } from './support/services.ts';
import { queuedJobs } from './support/auth.ts';

const ISSUER = 'https://idp.example.test/';
const AUDIENCE = 'mtls-relay';
const secret = randomBytes(32).toString('base64');
const account = `jw${randomBytes(3).toString('hex')}`;

let relay: Relay;
let target: MtlsTarget;
let jwksServer: Server;
let jwksUrl: string;
let jwksFetches = 0;
let jwksDown = false;
let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
let ec: { privateKey: CryptoKey; publicKey: CryptoKey };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const now = (): number => Math.floor(Date.now() / 1000);
const claims = (extra: JWTPayload = {}): JWTPayload => ({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', roles: ['admin'], accounts: ['*'], exp: now() + 600, ...extra });

async function hs256(payload: JWTPayload, key: Uint8Array = new TextEncoder().encode(secret)): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(key);
}

async function rs256(payload: JWTPayload, kid = 'rsa-1'): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid }).sign(rsa.privateKey);
}

async function forward(base: string, token: string | undefined, method = 'GET'): Promise<Answer> {
  const headers: Record<string, string> = { 'lp-forward-url': `${target.url}/echo` };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  const res = await request(`${base}/mtls/account/${account}`, { method: method as 'GET', headers, body: method === 'GET' ? null : 'x' });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

function problem(res: Answer): { code: string; detail: string } {
  return JSON.parse(res.text) as { code: string; detail: string };
}

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' }] };
  jwksServer = createServer((req, res) => {
    jwksFetches += 1;
    if (jwksDown) {
      res.statusCode = 503;
      res.end('down');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;

  const serverCa = await createCA('jwt-target-ca');
  const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  target = await startMtlsTarget({ server: serverCert, clientCa: serverCa.certPem, requireClientCert: false });
  relay = await startRelay({
    targetCaPem: serverCa.certPem,
    env: {
      AUTH_JWT_SECRET: secret,
      AUTH_JWKS_URL: jwksUrl,
      AUTH_JWT_PUBLIC_KEYS: await exportSPKI(ec.publicKey),
      AUTH_JWT_ISSUER: ISSUER,
      AUTH_JWT_AUDIENCE: AUDIENCE,
    },
  });
});

afterAll(async () => {
  await relay?.close();
  await target?.close();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

describe('Bearer JWT', () => {
  it('when the token is HS256 with the configured secret, RS256 from the JWKS, or ES256 from a configured key, then the forward passes', async () => {
    target.reset();
    expect((await forward(relay.api.url, await hs256(claims()))).status).toBe(200);
    expect((await forward(relay.api.url, await rs256(claims()))).status).toBe(200);
    const es = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey);
    expect((await forward(relay.api.url, es)).status).toBe(200);
    expect(target.requests).toHaveLength(3);
  });

  it('when the token holds the LPA role instead of the admin role, then it is accepted for reads and writes', async () => {
    const token = await hs256(claims({ roles: ['lpa'] }));
    expect((await forward(relay.api.url, token)).status).toBe(200);
    expect((await forward(relay.api.url, token, 'POST')).status).toBe(200);
  });

  const refused: Array<[string, () => Promise<string>, RegExp]> = [
    ['alg is none', async () => `${base64url.encode('{"alg":"none","typ":"JWT"}')}.${base64url.encode(JSON.stringify(claims()))}.`, /algorithm is not allowed/],
    ['it is HS256 signed with the RSA public key (HS/RS confusion)', async () => hs256(claims(), new TextEncoder().encode(JSON.stringify(await exportJWK(rsa.publicKey)))), /signature is invalid/],
    ['it is HS256 signed with the RSA public key in PEM form', async () => hs256(claims(), new TextEncoder().encode(await exportSPKI(rsa.publicKey))), /signature is invalid/],
    ['it is RS256 but claims the key id of nothing known', async () => rs256(claims(), 'unknown-kid'), /no known key/],
    ['it has expired (beyond the clock skew)', async () => hs256(claims({ exp: now() - 120 })), /expired/],
    ['it has no exp claim', async () => hs256({ ...claims(), exp: undefined }), /exp claim/],
    ['it is not valid yet', async () => hs256(claims({ nbf: now() + 600 })), /not valid yet/],
    ['its audience is another one', async () => hs256(claims({ aud: 'someone-else' })), /aud claim/],
    ['its issuer is another one', async () => hs256(claims({ iss: 'https://evil.example/' })), /iss claim/],
    ['it is signed with another secret', async () => hs256(claims(), randomBytes(32)), /signature is invalid/],
    ['it is not a JWT', async () => 'not-a-token', /malformed/],
  ];

  it.each(refused)('when %s, then 401 with a Bearer challenge, and nothing is enqueued', async (_what, make, detail) => {
    target.reset();
    const before = await queuedJobs(relay);
    const res = await forward(relay.api.url, await make());
    expect(res.status, res.text).toBe(401);
    expect(String(res.headers['www-authenticate'])).toMatch(/Bearer realm="mtls-relay", error="invalid_token"/);
    expect(problem(res)).toMatchObject({ code: 'unauthenticated' });
    expect(problem(res).detail).toMatch(detail);
    expect(await queuedJobs(relay)).toBe(before);
    expect(target.requests).toHaveLength(0);
  });

  it('when a valid token holds neither the admin nor the LPA role, then 403 and the target sees nothing', async () => {
    target.reset();
    for (const roles of [[], ['viewer'], undefined]) {
      const res = await forward(relay.api.url, await hs256(claims({ roles })), 'POST');
      expect(res.status, res.text).toBe(403);
      expect(problem(res)).toMatchObject({ code: 'forbidden', detail: 'the token holds neither the admin nor the lpa role' });
    }
    expect(target.requests).toHaveLength(0);
  });

  it('when the roles claim is not a list of strings, then 401', async () => {
    const res = await forward(relay.api.url, await hs256(claims({ roles: { admin: true } })));
    expect(res.status).toBe(401);
  });

  it('when a storm of tokens with unknown kids arrives, then each is 401 and the JWKS is not fetched again within 30 s', async () => {
    // The first test loaded the JWKS; this storm falls inside the minimum refetch interval.
    const before = jwksFetches;
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => rs256(claims(), `storm-${i}`).then((t) => forward(relay.api.url, t))));
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 30 }, () => 401));
    expect(jwksFetches - before).toBe(0);
  });
});

describe('Bearer JWT with the JWKS endpoint down', () => {
  let api: ServiceProcess | undefined;
  afterAll(async () => {
    jwksDown = false;
    await api?.stop();
  });

  it('when the JWKS endpoint fails, then RS256 tokens get 401 (not 500), HS256 tokens still pass, and the endpoint is asked at most once', async () => {
    jwksDown = true;
    // A fresh api process, so that it has no cached keys.
    api = await startService('api', relay.env);
    const before = jwksFetches;
    const answers = await Promise.all(Array.from({ length: 20 }, async () => forward(api!.url, await rs256(claims()))));
    for (const a of answers) {
      expect(a.status, a.text).toBe(401);
      expect(problem(a).code).toBe('unauthenticated');
    }
    expect(jwksFetches - before).toBe(1);
    expect((await forward(api.url, await hs256(claims()))).status).toBe(200);
    // Log lines reach the output in writes of 16 KiB or every 100 ms: wait for it (20 s at most).
    await api.waitForLog((l) => l.msg?.startsWith('JWKS fetch failed') === true);
  });

  it('when the JWKS endpoint does not answer at all (closed port), then 401, not 500', async () => {
    const closed = await freePort();
    const lone = await startService('api', { ...relay.env, AUTH_JWKS_URL: `http://127.0.0.1:${closed}/jwks` });
    try {
      const res = await forward(lone.url, await rs256(claims()));
      expect(res.status, res.text).toBe(401);
    } finally {
      await lone.stop();
    }
  });
});
