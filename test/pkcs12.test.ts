/**
 * PKCS#12 uploads: `pkcs12` (base64) with `passphrase` in JSON, or a .p12/.pfx file in multipart/form-data, on
 * create and on rotation. The files are made by `openssl pkcs12 -export` from certificates the test generates,
 * with today's defaults (AES-256-CBC, PBKDF2, SHA-256 MAC) and with legacy algorithms; the certificate is then
 * presented to a real mTLS target.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormData, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA, Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { call, forward, hexFingerprint } from './suites/admin-client.ts';
import type { ApiResponse } from './suites/admin-client.ts';
import { pemBodyLines } from './suites/redis-dump.ts';

const newAccount = (): string => `p12${randomBytes(4).toString('hex')}`;
const certs = (account: string): string => `/accounts/${account}/access/certificates`;
const PASS = `pass-${randomBytes(6).toString('hex')}`;

describe('PKCS#12 uploads', () => {
  let relay: Relay;
  let dir: string;
  let clientCa: CA;
  let leafA: Issued;
  let leafB: Issued;
  let target: MtlsTarget;
  const keys: string[] = [];

  /** `openssl pkcs12 -export` of a leaf (and its CA) with extra options; the file's bytes. */
  const p12 = (leaf: Issued | { certPem: string; keyPem?: string }, extra: string[] = [], pass = PASS): Buffer => {
    const id = randomBytes(4).toString('hex');
    const cert = join(dir, `${id}.crt`);
    writeFileSync(cert, leaf.certPem);
    const args = ['pkcs12', '-export', '-in', cert, '-passout', `pass:${pass}`, '-out', join(dir, `${id}.p12`), '-certfile', join(dir, 'ca.pem')];
    if (leaf.keyPem === undefined) args.push('-nokeys');
    else {
      writeFileSync(join(dir, `${id}.key`), leaf.keyPem);
      args.push('-inkey', join(dir, `${id}.key`));
    }
    const run = spawnSync('openssl', [...args, ...extra], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    return readFileSync(join(dir, `${id}.p12`));
  };

  const upload = async (method: 'POST' | 'PUT', path: string, fields: Record<string, string | string[]>, file?: { field: string; data: Buffer; name: string }): Promise<ApiResponse> => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) form.append(k, one);
    if (file !== undefined) form.append(file.field, new Blob([new Uint8Array(file.data)], { type: 'application/x-pkcs12' }), file.name);
    const res = await request(`${relay.api.url}${path}`, { method, headers: relay.auth(), body: form });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: JSON.parse(text) };
  };

  const expectError = (res: ApiResponse, status: number, code: number, pointer?: string): void => {
    expect(res.status, res.text).toBe(status);
    expect(res.json.success).toBe(false);
    expect(res.json.errors[0].code).toBe(code);
    expect(res.json.errors[0].documentation_url).toMatch(/^\/docs\/errors#/);
    if (pointer !== undefined) expect(res.json.errors[0].source).toEqual({ pointer });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mtls-relay-p12-'));
    const serverCa = await createCA('p12-server-ca');
    clientCa = await createCA('p12-client-ca');
    writeFileSync(join(dir, 'ca.pem'), clientCa.certPem);
    leafA = await issueCertificate(clientCa, { commonName: 'p12-client-a', usage: 'client' });
    leafB = await issueCertificate(clientCa, { commonName: 'p12-client-b', usage: 'client' });
    keys.push(leafA.keyPem, leafB.keyPem);
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: true });
    relay = await startRelay({ targetCaPem: serverCa.certPem });
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('JSON pkcs12 (openssl defaults: AES-256-CBC, PBKDF2, SHA-256 MAC) makes a client certificate the target accepts', async () => {
    const account = newAccount();
    const res = await call(relay, 'POST', certs(account), { name: 'modern', pkcs12: p12(leafA).toString('base64'), passphrase: PASS, associated_hostnames: ['localhost'] });
    expect(res.status, res.text).toBe(201);
    expect(res.json.result).toMatchObject({ type: 'client', fingerprint: hexFingerprint(leafA.fingerprint256), serial_number: leafA.serialNumber });
    target.reset();
    const sent = await forward(relay, account, `${target.url}/p12`);
    expect(sent.status, sent.text).toBe(200);
    expect(target.requests[0]?.clientCert?.fingerprint256).toBe(leafA.fingerprint256);
  });

  it.each([
    ['3DES (PBE-SHA1-3DES, SHA-1 MAC)', ['-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1'], 'legacy.pfx'],
    ['openssl -legacy (RC2-40 certificates, 3DES key)', ['-legacy'], 'legacy.p12'],
    ['AES-128-CBC, SHA-512 MAC', ['-keypbe', 'AES-128-CBC', '-certpbe', 'AES-128-CBC', '-macalg', 'sha512'], 'aes128.p12'],
  ])('a multipart .p12/.pfx upload with %s is read', async (_label, options, fileName) => {
    const account = newAccount();
    const res = await upload('POST', certs(account), { name: 'upload', passphrase: PASS, associated_hostnames: ['localhost', 'api.example.com'] }, { field: 'file', data: p12(leafA, options), name: fileName });
    expect(res.status, res.text).toBe(201);
    expect(res.json.result).toMatchObject({ type: 'client', fingerprint: hexFingerprint(leafA.fingerprint256), associated_hostnames: ['localhost', 'api.example.com'] });
    target.reset();
    expect((await forward(relay, account, `${target.url}/legacy`)).status).toBe(200);
    expect(target.requests[0]?.clientCert?.fingerprint256).toBe(leafA.fingerprint256);
  });

  it('rotation: PUT with pkcs12 (JSON) or a file (multipart) replaces the material', async () => {
    const account = newAccount();
    const created = await call(relay, 'POST', certs(account), { name: 'rotate', pkcs12: p12(leafA).toString('base64'), passphrase: PASS });
    const id = created.json.result.id as string;
    const json = await call(relay, 'PUT', `${certs(account)}/${id}`, { associated_hostnames: ['localhost'], pkcs12: p12(leafB).toString('base64'), passphrase: PASS });
    expect(json.status, json.text).toBe(200);
    expect(json.json.result).toMatchObject({ id, fingerprint: hexFingerprint(leafB.fingerprint256), associated_hostnames: ['localhost'] });
    const multipart = await upload('PUT', `${certs(account)}/${id}`, { passphrase: PASS }, { field: 'pkcs12', data: p12(leafA), name: 'a.p12' });
    expect(multipart.status, multipart.text).toBe(200);
    // Without associated_hostnames, a multipart rotation keeps them.
    expect(multipart.json.result).toMatchObject({ id, fingerprint: hexFingerprint(leafA.fingerprint256), associated_hostnames: ['localhost'] });
  });

  it('wrong passphrase, no key, an unreadable algorithm and non-PKCS#12 data each get a 400 with their own code', async () => {
    const account = newAccount();
    const file = p12(leafA);
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: file.toString('base64'), passphrase: 'wrong' }), 400, 12011, '/passphrase');
    expectError(await upload('POST', certs(account), { name: 'x', passphrase: 'wrong' }, { field: 'file', data: file, name: 'x.p12' }), 400, 12011, '/passphrase');
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: p12({ certPem: leafA.certPem }).toString('base64'), passphrase: PASS }), 400, 12012, '/pkcs12');
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: p12(leafA, ['-keypbe', 'CAMELLIA-256-CBC']).toString('base64'), passphrase: PASS }), 400, 12013, '/pkcs12');
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: p12(leafA, ['-macalg', 'sha224']).toString('base64'), passphrase: PASS }), 400, 12013, '/pkcs12');
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: Buffer.from(leafA.certPem).toString('base64'), passphrase: PASS }), 400, 12010, '/pkcs12');
    // Key derivation runs on the api's event loop: an iteration count above the cap is refused before any work.
    const slow = await call(relay, 'POST', certs(account), { name: 'x', pkcs12: p12(leafA, ['-iter', '1000000']).toString('base64'), passphrase: PASS });
    expectError(slow, 400, 12013, '/pkcs12');
    expect(slow.json.errors[0].message).toMatch(/1000000 key-derivation iterations; at most 100000/);
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: 'not base64 at all!', passphrase: PASS }), 400, 12000, '/pkcs12');
    expectError(await call(relay, 'POST', certs(account), { name: 'x', pkcs12: file.toString('base64'), passphrase: PASS, certificate: leafA.certPem }), 400, 12000, '/certificate');
    expectError(await upload('POST', certs(account), { name: 'x', passphrase: PASS }), 400, 12000, '/pkcs12');
    expectError(await upload('POST', certs(account), { name: 'x' }, { field: 'other', data: file, name: 'x.p12' }), 400, 12000, '/other');
    expectError(await upload('POST', certs(account), { name: 'x' }, { field: 'file', data: randomBytes(1_000_001), name: 'big.p12' }), 413, 12008);
    expect((await call(relay, 'GET', certs(account))).json.result).toEqual([]);
  });

  it('the key and the passphrase never appear in responses or logs', async () => {
    const account = newAccount();
    const res = await upload('POST', certs(account), { name: 'secret', passphrase: PASS }, { field: 'file', data: p12(leafB), name: 'b.p12' });
    expect(res.status).toBe(201);
    const wrong = await call(relay, 'POST', certs(account), { name: 'y', pkcs12: p12(leafB).toString('base64'), passphrase: `${PASS}-wrong` });
    expect(wrong.status).toBe(400);
    // Log lines are written in order, 16 KiB at a time or every 100 ms: once the second request's line is out, every
    // line about both uploads is.
    await relay.api.waitForLog((l) => l.msg === 'request' && l['path'] === certs(account) && l['status'] === 400);
    const logs = [relay.api, ...relay.workers].map((p) => p.output.join('')).join('\n');
    for (const text of [res.text, wrong.text, logs]) {
      expect(text).not.toMatch(/PRIVATE KEY/);
      expect(text).not.toContain(PASS);
      for (const line of keys.flatMap(pemBodyLines)) expect(text).not.toContain(line);
    }
  });
});
