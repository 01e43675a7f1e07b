import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateStore } from '@mtls-relay/shared/store';
import { parseTargetUrl } from '@mtls-relay/shared/url';
import { MemoryBackend } from '../../../scripts/lib/memory-backend.ts';
import { createCA, issueCertificate } from '../../../scripts/lib/pki.ts';
import type { CA } from '../../../scripts/lib/pki.ts';
import { CertificateResolver } from './resolver.ts';

// Real certificates from a throw-away CA, in a real CertificateStore (on the in-memory backend that
// test/store-contract.test.ts holds to the same contract as the Redis and Vault backends).
const DAY = 24 * 60 * 60 * 1000;
let ca: CA;
let account = 0;

beforeAll(async () => {
  ca = await createCA('resolver-test-ca');
});

async function setup() {
  const store = new CertificateStore(new MemoryBackend());
  const accountId = `acct-${(account += 1)}`;
  const add = async (name: string, hostnames: string[], validDays = 30): Promise<string> => {
    const leaf = await issueCertificate(ca, { commonName: name, usage: 'client', notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + validDays * DAY) });
    const created = await store.createCertificate(accountId, { name, certificate: leaf.chainPem, privateKey: leaf.keyPem, associatedHostnames: hostnames });
    return created.id;
  };
  const resolver = new CertificateResolver(store, { ttlMs: 60_000 });
  const resolve = async (service: string, url: string, now?: number) => {
    const r = await resolver.resolve(accountId, service, parseTargetUrl(url, { allowHttp: false }), now);
    return { id: r.material?.id ?? null, name: r.material?.name ?? null, hostRequiresCertificate: r.hostRequiresCertificate, material: r.material };
  };
  return { store, accountId, add, resolver, resolve };
}

describe('CertificateResolver: which certificate a forward uses', () => {
  it('an exact mapping for (service, url) beats a certificate for the host name', async () => {
    const { store, accountId, add, resolve } = await setup();
    const mapped = await add('mapped', []);
    await add('by-host', ['api.example.com'], 300);
    await store.createMapping(accountId, { serviceName: 'billing', url: 'https://api.example.com/v1/charge', certificateId: mapped });
    expect((await resolve('billing', 'https://API.example.com:443/v1/charge')).name).toBe('mapped');
    // Another service, or another path, has no mapping: the host name decides.
    expect((await resolve('other', 'https://api.example.com/v1/charge')).name).toBe('by-host');
    expect((await resolve('billing', 'https://api.example.com/v1/refund')).name).toBe('by-host');
  });

  it('an exact host name beats a wildcard, even one that stays valid longer', async () => {
    const { add, resolve } = await setup();
    await add('wildcard', ['*.example.com'], 365);
    await add('exact', ['api.example.com'], 10);
    expect((await resolve('svc', 'https://api.example.com/')).name).toBe('exact');
    expect((await resolve('svc', 'https://www.example.com/')).name).toBe('wildcard');
    // A wildcard covers one label only, and not the bare domain.
    expect((await resolve('svc', 'https://a.b.example.com/')).id).toBeNull();
    expect((await resolve('svc', 'https://example.com/')).id).toBeNull();
  });

  it('among equal matches, the certificate that stays valid longest', async () => {
    const { add, resolve } = await setup();
    await add('short', ['api.example.com'], 5);
    await add('long', ['api.example.com'], 90);
    await add('middle', ['api.example.com'], 30);
    expect((await resolve('svc', 'https://api.example.com/')).name).toBe('long');
  });

  it('an expired certificate counts as none: its mapping falls through to the host name, and then to no certificate', async () => {
    const { store, accountId, add, resolve } = await setup();
    const soon = await add('mapped-soon-expired', ['api.example.com'], 2);
    await add('host-later-expired', ['api.example.com'], 10);
    await store.createMapping(accountId, { serviceName: 'svc', url: 'https://api.example.com/', certificateId: soon });
    expect((await resolve('svc', 'https://api.example.com/')).name).toBe('mapped-soon-expired');
    expect((await resolve('svc', 'https://api.example.com/', Date.now() + 5 * DAY)).name).toBe('host-later-expired');
    expect((await resolve('svc', 'https://api.example.com/', Date.now() + 20 * DAY)).material).toBeNull();
    // Not valid yet counts as none too.
    expect((await resolve('svc', 'https://api.example.com/', Date.now() - 2 * DAY)).material).toBeNull();
  });

  it('gives the private key with the chain, and says when the host settings demand a certificate', async () => {
    const { store, accountId, add, resolve } = await setup();
    await add('with-key', ['api.example.com']);
    await store.putSettings(accountId, [{ hostname: '*.example.com', chinaNetwork: false, clientCertificateForwarding: true }]);
    const r = await resolve('svc', 'https://api.example.com/');
    expect(r.material?.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(r.hostRequiresCertificate).toBe(true);
    const elsewhere = await resolve('svc', 'https://api.example.org/');
    expect(elsewhere).toMatchObject({ id: null, hostRequiresCertificate: false });
  });

  it('keeps what it read until told the account changed', async () => {
    const { store, accountId, add, resolver, resolve } = await setup();
    const first = await add('first', []);
    const second = await add('second', []);
    const mapping = await store.createMapping(accountId, { serviceName: 'svc', url: 'https://api.example.com/', certificateId: first });
    expect((await resolve('svc', 'https://api.example.com/')).id).toBe(first);
    await store.deleteMapping(accountId, mapping.id);
    await store.createMapping(accountId, { serviceName: 'svc', url: 'https://api.example.com/', certificateId: second });
    expect((await resolve('svc', 'https://api.example.com/')).id).toBe(first);
    resolver.invalidate(accountId);
    expect((await resolve('svc', 'https://api.example.com/')).id).toBe(second);
  });
});
