/**
 * POST /mtls/mapping end to end: the API validates and enqueues a mapping job, a worker answers it with the
 * resolver the forward path uses, and the API waits for the outcome on its reply channel.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA, Issued } from '../scripts/lib/pki.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { call } from './suites/admin-client.ts';

const key = (t: { accountId: string; serviceName: string; url: string }): string =>
  `CertificateMappingParamters{serviceName='${t.serviceName}', accountId='${t.accountId}', url='${t.url}'}`;

// The request of the seed document, verbatim.
const SEED_REQUEST = [
  { accountId: 'test1', serviceName: 'test1', url: 'https://test.com' },
  { accountId: 'test2', serviceName: 'test1', url: 'https://test.com' },
  { accountId: 'test3', serviceName: 'test1', url: 'https://test.com' },
  { accountId: 'test4', serviceName: 'test1', url: 'https://test.com' },
];

describe('mapping check (POST /mtls/mapping)', () => {
  let relay: Relay;
  let ca: CA;
  let leaf: Issued;

  const addCertificate = async (account: string, body: Record<string, unknown>): Promise<string> => {
    const res = await call(relay, 'POST', `/accounts/${account}/access/certificates`, body);
    expect(res.status, res.text).toBe(201);
    return res.json.result.id as string;
  };
  const addMapping = async (account: string, serviceName: string, url: string, certificateId: string): Promise<string> => {
    const res = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName, url, certificateId });
    expect(res.status, res.text).toBe(201);
    return res.json.id as string;
  };

  beforeAll(async () => {
    ca = await createCA('mapping-check-ca');
    leaf = await issueCertificate(ca, { commonName: 'mapping-check-client', usage: 'client' });
    relay = await startRelay({ kind: 'embedded', workers: 1 });
    const id = await addCertificate('test1', { name: 'c', certificate: leaf.chainPem, private_key: leaf.keyPem });
    await addMapping('test1', 'test1', 'https://test.com', id);
  });

  afterAll(async () => {
    await relay?.close();
  });

  it("answers the seed's example request with the seed's key format and booleans", async () => {
    const res = await call(relay, 'POST', '/mtls/mapping', SEED_REQUEST);
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json).toEqual({
      "CertificateMappingParamters{serviceName='test1', accountId='test1', url='https://test.com'}": true,
      "CertificateMappingParamters{serviceName='test1', accountId='test2', url='https://test.com'}": false,
      "CertificateMappingParamters{serviceName='test1', accountId='test3', url='https://test.com'}": false,
      "CertificateMappingParamters{serviceName='test1', accountId='test4', url='https://test.com'}": false,
    });
    const v1 = await call(relay, 'POST', '/mtls/mapping?v=1', SEED_REQUEST);
    expect(v1.json).toEqual(res.json);
  });

  it('?v=2 answers [{ accountId, serviceName, url, doExist }] in request order', async () => {
    const res = await call(relay, 'POST', '/mtls/mapping?v=2', [SEED_REQUEST[1], SEED_REQUEST[0]]);
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual([
      { ...SEED_REQUEST[1], doExist: false },
      { ...SEED_REQUEST[0], doExist: true },
    ]);
  });

  it('counts a certificate chosen by associated hostname, as a forward would', async () => {
    await addCertificate('test5', { name: 'h', certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: ['*.example.com'] });
    const tuples = [
      { accountId: 'test5', serviceName: 'any', url: 'https://api.example.com/pay' },
      { accountId: 'test5', serviceName: 'any', url: 'https://example.com/pay' },
    ];
    const res = await call(relay, 'POST', '/mtls/mapping', tuples);
    expect(res.json).toEqual({ [key(tuples[0]!)]: true, [key(tuples[1]!)]: false });
  });

  it('?match=exact answers whether a mapping exists for exactly the tuple: a hostname match is not one, an expired mapped certificate still is', async () => {
    const id = await addCertificate('test8', { name: 'x', certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: ['*.example.net'] });
    await addMapping('test8', 'svc', 'HTTPS://Mapped.Example.net:443/pay?x=1', id);
    const tuples = [
      { accountId: 'test8', serviceName: 'svc', url: 'https://mapped.example.net/pay?x=1' },
      { accountId: 'test8', serviceName: 'svc', url: 'https://mapped.example.net/pay?x=2' },
      { accountId: 'test8', serviceName: 'other', url: 'https://mapped.example.net/pay?x=1' },
    ];
    const effective = await call(relay, 'POST', '/mtls/mapping?v=2', tuples);
    expect(effective.json.map((t: { doExist: boolean }) => t.doExist)).toEqual([true, true, true]);
    const exact = await call(relay, 'POST', '/mtls/mapping?v=2&match=exact', tuples);
    expect(exact.status, exact.text).toBe(200);
    expect(exact.json.map((t: { doExist: boolean }) => t.doExist)).toEqual([true, false, false]);
    const v1 = await call(relay, 'POST', '/mtls/mapping?match=exact', tuples.slice(0, 2));
    expect(v1.json).toEqual({ [key(tuples[0]!)]: true, [key(tuples[1]!)]: false });
    const bad = await call(relay, 'POST', '/mtls/mapping?match=fuzzy', tuples);
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: 'bad_request' });
  });

  it('a tuple whose certificate has expired reports false', async () => {
    const shortLived = await issueCertificate(ca, {
      commonName: 'short-lived',
      usage: 'client',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 2_000),
    });
    const id = await addCertificate('test6', { name: 'short', certificate: shortLived.chainPem, private_key: shortLived.keyPem });
    const expiresOn = Date.parse((await call(relay, 'GET', `/accounts/test6/access/certificates/${id}`)).json.result.expires_on);
    await addMapping('test6', 'svc', 'https://short.example.com/', id);
    const tuple = { accountId: 'test6', serviceName: 'svc', url: 'https://short.example.com/' };
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(expiresOn + 1_000), { timeout: 10_000, interval: 200 });
    const res = await call(relay, 'POST', '/mtls/mapping', [tuple, SEED_REQUEST[0]]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ [key(tuple)]: false, [key(SEED_REQUEST[0]!)]: true });
    // The mapping itself still exists: the exact question says so.
    expect((await call(relay, 'POST', '/mtls/mapping?match=exact', [tuple])).json).toEqual({ [key(tuple)]: true });
  });

  it('a mapping deleted through the API stops counting at once', async () => {
    const id = await addCertificate('test7', { name: 'd', certificate: leaf.chainPem, private_key: leaf.keyPem });
    const mappingId = await addMapping('test7', 'svc', 'https://deleted.example.com/x', id);
    const tuple = { accountId: 'test7', serviceName: 'svc', url: 'https://deleted.example.com/x' };
    expect((await call(relay, 'POST', '/mtls/mapping', [tuple])).json).toEqual({ [key(tuple)]: true });
    expect((await call(relay, 'DELETE', `/mtls/account/test7/mappings/${mappingId}`)).status).toBe(204);
    expect((await call(relay, 'POST', '/mtls/mapping', [tuple])).json).toEqual({ [key(tuple)]: false });
  });

  it('answers 1,000 tuples, and refuses 1,001 with 400 saying what the limit is', async () => {
    const tuples = Array.from({ length: 1000 }, (_, i) => ({ accountId: `bulk${i}`, serviceName: 's', url: `https://h${i}.example.com/` }));
    const ok = await call(relay, 'POST', '/mtls/mapping', tuples);
    expect(ok.status, ok.text).toBe(200);
    expect(Object.keys(ok.json)).toHaveLength(1000);
    expect(Object.values(ok.json).every((v) => v === false)).toBe(true);

    const tooMany = await call(relay, 'POST', '/mtls/mapping', [...tuples, SEED_REQUEST[0]]);
    expect(tooMany.status).toBe(400);
    expect(tooMany.headers['content-type']).toBe('application/problem+json');
    expect(tooMany.json).toMatchObject({ code: 'invalid_body', limit: 1000, count: 1001 });
    expect(tooMany.json.detail).toBe('at most 1000 tuples per request; this one has 1001');
  });

  it('an invalid tuple is a 400 naming its index; so is a bad v or a body that is not an array', async () => {
    const bad = await call(relay, 'POST', '/mtls/mapping', [SEED_REQUEST[0], SEED_REQUEST[1], { accountId: 'test1', serviceName: 7, url: 'https://test.com' }]);
    expect(bad.status).toBe(400);
    expect(bad.headers['content-type']).toBe('application/problem+json');
    expect(bad.json).toMatchObject({ code: 'invalid_body', index: 2 });
    expect(bad.json.detail).toMatch(/^tuple 2: serviceName/);

    const badUrl = await call(relay, 'POST', '/mtls/mapping', [{ accountId: 'test1', serviceName: 's', url: 'test.com' }]);
    expect(badUrl.json).toMatchObject({ code: 'invalid_body', index: 0 });

    expect((await call(relay, 'POST', '/mtls/mapping?v=3', SEED_REQUEST)).status).toBe(400);
    expect((await call(relay, 'POST', '/mtls/mapping', { accountId: 'test1' })).status).toBe(400);
    expect((await call(relay, 'POST', '/mtls/mapping', '[{"accountId": ')).status).toBe(400);
  });

  it('an empty list answers {} (v1) and [] (v2)', async () => {
    expect((await call(relay, 'POST', '/mtls/mapping', [])).json).toEqual({});
    expect((await call(relay, 'POST', '/mtls/mapping?v=2', [])).json).toEqual([]);
  });
});
