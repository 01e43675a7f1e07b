/**
 * The official Cloudflare TypeScript SDK (`cloudflare` on npm), pointed at the relay with `baseURL`, manages
 * certificates and hostname settings exactly as it would Cloudflare's: calls typed by the SDK itself (a root is
 * created with the SDK's own create parameters, nothing added), auto-pagination, and the SDK's error classes
 * for the relay's failures. Its apiToken is a JWT minted by the test helpers (sent as `Authorization: Bearer`).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import Cloudflare from 'cloudflare';
import type { Certificate, CertificateCreateParams } from 'cloudflare/resources/zero-trust/access/certificates/certificates';
import type { CertificateSettings } from 'cloudflare/resources/zero-trust/access/certificates/settings';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../scripts/lib/tokens.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA, Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { forward, hexFingerprint } from './suites/admin-client.ts';
import { openApiChecked } from './support/openapi.ts';

const account = `sdk${randomBytes(4).toString('hex')}`;
const other = `sdk${randomBytes(4).toString('hex')}`;

describe('the official Cloudflare SDK against the relay', () => {
  let relay: Relay;
  let cf: Cloudflare;
  let customerCa: CA;
  let clientCa: CA;
  let leaf: Issued;
  let target: MtlsTarget;

  const sdk = (apiToken: string): Cloudflare => new Cloudflare({ apiToken, apiKey: null, apiEmail: null, userServiceKey: null, baseURL: relay.api.url, maxRetries: 0 });
  const token = (accounts: string[]): Promise<string> =>
    mintToken({ secret: relay.env['AUTH_JWT_SECRET'] as string, roles: ['admin'], accounts, ttlSeconds: 600, subject: 'sdk-test' });

  beforeAll(async () => {
    customerCa = await createCA('sdk-customer-root');
    clientCa = await createCA('sdk-client-ca');
    leaf = await issueCertificate(clientCa, { commonName: 'sdk-client', usage: 'client' });
    // The target's server certificate comes from the customer's root; the workers do not trust it otherwise.
    const server = await issueCertificate(customerCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: true });
    relay = await startRelay();
    cf = sdk(await token([account]));
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
  });

  it('creates a root with the SDK’s own parameters and a client certificate; a forward then uses both', async () => {
    const checkedBefore = openApiChecked();
    const params: CertificateCreateParams = { account_id: account, name: 'customer-root', certificate: customerCa.certPem, associated_hostnames: ['localhost'] };
    const root: Certificate = await cf.zeroTrust.access.certificates.create(params);
    expect(root).toMatchObject({ name: 'customer-root', associated_hostnames: ['localhost'], fingerprint: hexFingerprint(new X509Certificate(customerCa.certPem).fingerprint256), type: 'root' });
    expect(root.id).toMatch(/^[0-9a-f-]{36}$/);
    // The SDK's fetch goes through the suite's OpenAPI check like every other client.
    expect(openApiChecked()).toBeGreaterThan(checkedBefore);

    // A client identity needs its key, which Cloudflare's create has no parameter for: the SDK's generic post.
    const created = await cf.post<{ result: Certificate }>(`/accounts/${account}/access/certificates`, {
      body: { name: 'client', certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: ['localhost'] },
    });
    expect(created.result).toMatchObject({ name: 'client', type: 'client', fingerprint: hexFingerprint(leaf.fingerprint256) });

    target.reset();
    const res = await forward(relay, account, `${target.url}/sdk`);
    expect(res.status, res.text).toBe(200);
    expect(target.requests[0]?.clientCert?.fingerprint256).toBe(leaf.fingerprint256);
  });

  it('lists with auto-pagination across pages, gets, updates and deletes', async () => {
    for (const n of [1, 2, 3]) {
      await cf.zeroTrust.access.certificates.create({ account_id: account, name: `extra-${n}`, certificate: customerCa.certPem });
    }
    const names: string[] = [];
    for await (const c of cf.zeroTrust.access.certificates.list({ account_id: account, per_page: 2 })) names.push(c.name as string);
    expect(names).toEqual(['customer-root', 'client', 'extra-1', 'extra-2', 'extra-3']);
    const firstPage = await cf.zeroTrust.access.certificates.list({ account_id: account, per_page: 2 });
    expect(firstPage.result).toHaveLength(2);
    expect(firstPage.hasNextPage()).toBe(true);

    const extra = (await cf.zeroTrust.access.certificates.list({ account_id: account, per_page: 2, page: 2 })).result[1] as Certificate;
    const got = await cf.zeroTrust.access.certificates.get(extra.id as string, { account_id: account });
    expect(got).toEqual(extra);
    const updated = await cf.zeroTrust.access.certificates.update(extra.id as string, { account_id: account, name: 'renamed', associated_hostnames: ['admin.example.com'] });
    expect(updated).toMatchObject({ id: extra.id, name: 'renamed', associated_hostnames: ['admin.example.com'] });
    const deleted = await cf.zeroTrust.access.certificates.delete(extra.id as string, { account_id: account });
    expect(deleted).toEqual({ id: extra.id });
    await expect(cf.zeroTrust.access.certificates.get(extra.id as string, { account_id: account })).rejects.toBeInstanceOf(Cloudflare.NotFoundError);
  });

  it('updates and reads the hostname settings', async () => {
    const settings: CertificateSettings[] = [
      { hostname: 'admin.example.com', china_network: false, client_certificate_forwarding: true },
      { hostname: '*.internal.example.com', china_network: true, client_certificate_forwarding: false },
    ];
    const saved: CertificateSettings[] = [];
    for await (const s of cf.zeroTrust.access.certificates.settings.update({ account_id: account, settings })) saved.push(s);
    expect(saved).toEqual(settings);
    const read: CertificateSettings[] = [];
    for await (const s of cf.zeroTrust.access.certificates.settings.get({ account_id: account })) read.push(s);
    expect(read).toEqual(settings);
  });

  it('raises the SDK’s error classes, with the envelope’s codes, documentation links and pointers', async () => {
    const notCa = await cf.zeroTrust.access.certificates.create({ account_id: account, name: 'not-a-ca', certificate: leaf.certPem }).catch((e: unknown) => e);
    expect(notCa).toBeInstanceOf(Cloudflare.BadRequestError);
    const bad = notCa as InstanceType<typeof Cloudflare.BadRequestError>;
    expect(bad.status).toBe(400);
    expect(bad.errors[0]).toMatchObject({ code: 12002, documentation_url: '/docs/errors#invalid_certificate', source: { pointer: '/certificate' } });

    const duplicate = await cf.zeroTrust.access.certificates.create({ account_id: account, name: 'customer-root', certificate: customerCa.certPem }).catch((e: unknown) => e);
    expect(duplicate).toBeInstanceOf(Cloudflare.ConflictError);

    await expect(cf.zeroTrust.access.certificates.get(randomBytes(8).toString('hex'), { account_id: account })).rejects.toBeInstanceOf(Cloudflare.NotFoundError);
    await expect(cf.zeroTrust.access.certificates.list({ account_id: other })).rejects.toBeInstanceOf(Cloudflare.PermissionDeniedError);
    await expect(sdk('not-a-jwt').zeroTrust.access.certificates.list({ account_id: account })).rejects.toBeInstanceOf(Cloudflare.AuthenticationError);
    const paging = await cf.zeroTrust.access.certificates.list({ account_id: account, per_page: 5000 }).catch((e: unknown) => e);
    expect(paging).toBeInstanceOf(Cloudflare.BadRequestError);
  });
});
