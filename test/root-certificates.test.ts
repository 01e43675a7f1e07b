/**
 * Root certificates: a certificate uploaded without private_key is a CA of the account. Forwards to its
 * associated hostnames verify the target's server certificate against the account's roots instead of the public
 * roots (and of TARGET_CA_FILE); other accounts and other hostnames are untouched. Real TLS end to end.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA, Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { call, forward, hexFingerprint } from './suites/admin-client.ts';

const newAccount = (): string => `root${randomBytes(4).toString('hex')}`;
const certs = (account: string): string => `/accounts/${account}/access/certificates`;

describe('root certificates of an account', () => {
  let relay: Relay;
  let privateCa: CA;
  let otherPrivateCa: CA;
  let clientCa: CA;
  let client: Issued;
  /** Server certificate from the customer's private CA; the target does not demand a client certificate. */
  let privateTarget: MtlsTarget;
  /** Same private CA, and it demands a client certificate from clientCa. */
  let mtlsTarget: MtlsTarget;
  /** Server certificate from the partner CA the workers trust through TARGET_CA_FILE. */
  let partnerTarget: MtlsTarget;

  const rootBody = (ca: CA, hosts: string[], name = 'customer-root') => ({ name, certificate: ca.certPem, associated_hostnames: hosts });
  const expectCertificateInvalid = async (account: string, url: string): Promise<void> => {
    const res = await forward(relay, account, url);
    expect(res.status, res.text).toBe(502);
    expect(res.json).toMatchObject({ code: 'target_certificate_invalid' });
  };

  beforeAll(async () => {
    privateCa = await createCA('customer-private-ca');
    otherPrivateCa = await createCA('customer-other-ca');
    const partnerCa = await createCA('partner-ca');
    clientCa = await createCA('root-test-client-ca');
    const serverOpts = { commonName: 'localhost', usage: 'server' as const, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
    client = await issueCertificate(clientCa, { commonName: 'root-test-client', usage: 'client' });
    privateTarget = await startMtlsTarget({ server: await issueCertificate(privateCa, serverOpts), clientCa: clientCa.certPem, requireClientCert: false });
    mtlsTarget = await startMtlsTarget({ server: await issueCertificate(privateCa, serverOpts), clientCa: clientCa.certPem, requireClientCert: true });
    partnerTarget = await startMtlsTarget({ server: await issueCertificate(partnerCa, serverOpts), clientCa: clientCa.certPem, requireClientCert: false });
    relay = await startRelay({ targetCaPem: partnerCa.certPem });
  });

  afterAll(async () => {
    await relay?.close();
    await Promise.all([privateTarget?.close(), mtlsTarget?.close(), partnerTarget?.close()]);
  });

  it('a target with a private CA fails without the root and succeeds with it; another account never uses it', async () => {
    const account = newAccount();
    const stranger = newAccount();
    await expectCertificateInvalid(account, `${privateTarget.url}/before`);

    const created = await call(relay, 'POST', certs(account), rootBody(privateCa, ['localhost']));
    expect(created.status, created.text).toBe(201);
    expect(created.json.result).toMatchObject({ type: 'root', name: 'customer-root', associated_hostnames: ['localhost'] });

    privateTarget.reset();
    const ok = await forward(relay, account, `${privateTarget.url}/with-root`);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers['lp-mtls']).toBe('none');
    expect(privateTarget.requests.map((r) => r.path)).toEqual(['/with-root']);

    await expectCertificateInvalid(stranger, `${privateTarget.url}/stranger`);
  });

  it('the china_network setting has no effect on forwards (README: stored for Cloudflare compatibility only)', async () => {
    const account = newAccount();
    expect((await call(relay, 'POST', certs(account), rootBody(privateCa, ['localhost']))).status).toBe(201);
    const put = await call(relay, 'PUT', `${certs(account)}/settings`, { settings: [{ hostname: 'localhost', china_network: true, client_certificate_forwarding: false }] });
    expect(put.status, put.text).toBe(202);
    privateTarget.reset();
    const res = await forward(relay, account, `${privateTarget.url}/china`);
    expect(res.status, res.text).toBe(200);
    expect(privateTarget.requests.map((r) => r.path)).toEqual(['/china']);
  });

  it('a root applies only to its associated hostnames', async () => {
    const account = newAccount();
    expect((await call(relay, 'POST', certs(account), rootBody(privateCa, ['other.example.com', '*.localhost']))).status).toBe(201);
    // *.localhost matches one label below localhost, never localhost itself.
    await expectCertificateInvalid(account, `${privateTarget.url}/elsewhere`);
  });

  it('with a root for the host, the public roots and TARGET_CA_FILE no longer vouch for it', async () => {
    const account = newAccount();
    expect((await forward(relay, account, `${partnerTarget.url}/partner`)).status).toBe(200);
    expect((await call(relay, 'POST', certs(account), rootBody(privateCa, ['localhost']))).status).toBe(201);
    await vi.waitFor(async () => expectCertificateInvalid(account, `${partnerTarget.url}/partner`), { timeout: 10_000, interval: 100 });
  });

  it('a root that has expired fails the handshake; it never hands the host back to TARGET_CA_FILE or the public roots', async () => {
    const account = newAccount();
    const shortLived = await createCA('short-lived-root', { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 4_000) });
    const created = await call(relay, 'POST', certs(account), rootBody(shortLived, ['localhost']));
    expect(created.status, created.text).toBe(201);
    const expiresOn = Date.parse(created.json.result.expires_on);
    await expectCertificateInvalid(account, `${partnerTarget.url}/while-valid`);
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(expiresOn + 1_000), { timeout: 15_000, interval: 200 });
    await expectCertificateInvalid(account, `${partnerTarget.url}/after-expiry`);
  });

  it('a root and a client certificate together: the server is verified by the root and the client certificate is presented', async () => {
    const account = newAccount();
    expect((await call(relay, 'POST', certs(account), rootBody(privateCa, ['localhost']))).status).toBe(201);
    const identity = await call(relay, 'POST', certs(account), { name: 'client', certificate: client.chainPem, private_key: client.keyPem, associated_hostnames: ['localhost'] });
    expect(identity.status, identity.text).toBe(201);
    expect(identity.json.result.type).toBe('client');
    mtlsTarget.reset();
    const res = await forward(relay, account, `${mtlsTarget.url}/both`);
    expect(res.status, res.text).toBe(200);
    expect(res.headers['lp-mtls-certificate-id']).toBe(identity.json.result.id);
    expect(mtlsTarget.requests[0]?.clientCert?.fingerprint256).toBe(client.fingerprint256);

    const list = await call(relay, 'GET', certs(account));
    expect(list.json.result.map((c: { type: string }) => c.type).sort()).toEqual(['client', 'root']);
  });

  it('a root cannot be mapped as a client identity, takes no private_key, and rotates with certificate alone', async () => {
    const account = newAccount();
    const root = (await call(relay, 'POST', certs(account), rootBody(privateCa, ['localhost']))).json.result;
    const mapping = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName: 's', url: `${privateTarget.url}/m`, certificateId: root.id });
    expect(mapping.status, mapping.text).toBe(400);
    expect(mapping.headers['content-type']).toBe('application/problem+json');
    expect(mapping.json).toMatchObject({ code: 'certificate_not_client' });

    const withKey = await call(relay, 'PUT', `${certs(account)}/${root.id}`, { associated_hostnames: ['localhost'], certificate: otherPrivateCa.certPem, private_key: otherPrivateCa.keyPem });
    expect(withKey.status).toBe(400);
    expect(withKey.json.errors[0]).toMatchObject({ code: 12000, source: { pointer: '/private_key' } });

    expect((await forward(relay, account, `${privateTarget.url}/before-rotation`)).status).toBe(200);
    const rotated = await call(relay, 'PUT', `${certs(account)}/${root.id}`, { associated_hostnames: ['localhost'], certificate: otherPrivateCa.certPem });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.json.result).toMatchObject({ id: root.id, type: 'root', fingerprint: hexFingerprint(new X509Certificate(otherPrivateCa.certPem).fingerprint256) });
    // The rotated root no longer vouches for the private CA's server certificate.
    await vi.waitFor(async () => expectCertificateInvalid(account, `${privateTarget.url}/after-rotation`), { timeout: 10_000, interval: 100 });

    expect((await call(relay, 'DELETE', `${certs(account)}/${root.id}`)).status).toBe(200);
  });
});
