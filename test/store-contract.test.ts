/**
 * One contract for both certificate-store backends: the embedded Redis store (sealed under MASTER_KEY) and
 * Vault KV v2 through node-vault (and for the in-memory backend the unit tests use) (against the Vault-API-compatible server; against a real Vault as well
 * when VAULT_ADDR and VAULT_TOKEN are set). Then the Vault-only behaviours: AppRole, renewal, timeouts,
 * sealed, and a wrong mount failing at start.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { createKeyRing } from '../packages/shared/src/crypto.ts';
import { StoreError } from '../packages/shared/src/errors.ts';
import { CertificateStore, EmbeddedBackend, VaultBackend } from '../packages/shared/src/store/index.ts';
import type { DocumentBackend } from '../packages/shared/src/store/index.ts';
import { MemoryBackend } from '../scripts/lib/memory-backend.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA } from '../scripts/lib/pki.ts';
import { startTestRedis } from './support/redis.ts';
import type { TestRedis } from './support/redis.ts';
import { startVaultServer } from './support/vault-server.ts';
import type { VaultServer } from './support/vault-server.ts';

let redis: TestRedis;
let redisClient: Redis;
let vault: VaultServer;
let ca: CA;

beforeAll(async () => {
  redis = await startTestRedis();
  redisClient = redis.client();
  vault = await startVaultServer({ approle: { roleId: 'relay-role', secretId: 'relay-secret', tokenTtlSeconds: 2, renewable: true } });
  ca = await createCA('store-contract-ca');
});

afterAll(async () => {
  await vault?.close();
  await redis?.close();
});

const unique = (): string => `c${randomBytes(4).toString('hex')}`;

interface Adapter {
  name: string;
  make: () => DocumentBackend;
}

const adapters: Adapter[] = [
  // The dev tooling's in-memory backend that unit tests use (services/worker/src/resolver.test.ts).
  { name: 'memory (dev tooling, for unit tests)', make: () => new MemoryBackend() },
  { name: 'embedded (Redis, sealed)', make: () => new EmbeddedBackend(redisClient, createKeyRing(randomBytes(32)), unique()) },
  // QUEUE_SHARDS > 1: keys tagged per account, the accounts folder indexed apart (the same contract).
  { name: 'embedded by account (QUEUE_SHARDS > 1)', make: () => new EmbeddedBackend(redisClient, createKeyRing(randomBytes(32)), unique(), { byAccount: true }) },
  {
    name: 'vault (test server, token)',
    make: () => new VaultBackend({ addr: vault.addr, token: vault.rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 2000 }),
  },
  {
    name: 'vault (test server, AppRole)',
    make: () =>
      new VaultBackend({ addr: vault.addr, roleId: 'relay-role', secretId: 'relay-secret', mount: 'secret', pathPrefix: unique(), timeoutMs: 2000 }),
  },
];
const realVault = process.env['VAULT_ADDR'];
const realToken = process.env['VAULT_TOKEN'];
if (realVault !== undefined && realToken !== undefined) {
  adapters.push({
    name: `vault (real, ${realVault})`,
    make: () => new VaultBackend({ addr: realVault, token: realToken, mount: process.env['VAULT_KV_MOUNT'] ?? 'secret', pathPrefix: `mtls-relay-contract/${unique()}`, timeoutMs: 5000 }),
  });
}

describe.each(adapters)('store contract: $name', ({ make }) => {
  let backend: DocumentBackend;
  beforeAll(async () => {
    backend = make();
    await backend.verify();
  });
  afterAll(async () => {
    await backend.close();
  });

  it('reads back what it wrote, with versions counting up from 1', async () => {
    expect(await backend.read('a/doc')).toBeNull();
    expect(await backend.write('a/doc', { n: 1, s: 'x' })).toBe(1);
    expect(await backend.write('a/doc', { n: 2 })).toBe(2);
    expect(await backend.read('a/doc')).toEqual({ data: { n: 2 }, version: 2 });
  });

  it('check-and-set: 0 creates only when absent; a stale version is a conflict', async () => {
    expect(await backend.write('cas/doc', { v: 'first' }, { cas: 0 })).toBe(1);
    await expect(backend.write('cas/doc', { v: 'again' }, { cas: 0 })).rejects.toMatchObject({ kind: 'conflict' });
    expect(await backend.write('cas/doc', { v: 'second' }, { cas: 1 })).toBe(2);
    await expect(backend.write('cas/doc', { v: 'stale' }, { cas: 1 })).rejects.toBeInstanceOf(StoreError);
    expect((await backend.read('cas/doc'))?.data).toEqual({ v: 'second' });
  });

  it('lists names below a folder, sub-folders with a trailing slash, and nothing for a missing folder', async () => {
    await backend.write('tree/x/leaf1', { a: 1 });
    await backend.write('tree/x/leaf2', { a: 2 });
    await backend.write('tree/x/sub/deep', { a: 3 });
    expect(await backend.list('tree/x')).toEqual(['leaf1', 'leaf2', 'sub/']);
    expect(await backend.list('tree/missing')).toEqual([]);
  });

  it('remove deletes every version, and removing something absent is fine', async () => {
    await backend.write('gone/doc', { a: 1 });
    await backend.write('gone/doc', { a: 2 });
    await backend.remove('gone/doc');
    expect(await backend.read('gone/doc')).toBeNull();
    expect(await backend.list('gone')).toEqual([]);
    await expect(backend.remove('gone/doc')).resolves.toBeUndefined();
    // A new document at the same path starts again.
    expect(await backend.write('gone/doc', { a: 3 }, { cas: 0 })).toBe(1);
  });

  it('reports itself healthy', async () => {
    expect((await backend.health()).ok).toBe(true);
  });

  it('backs the CertificateStore: create, rotate, map, and refuse to delete a mapped certificate', async () => {
    const store = new CertificateStore(backend);
    const account = unique();
    const leaf = await issueCertificate(ca, { commonName: 'contract-a', usage: 'client' });
    const created = await store.createCertificate(account, { name: 'a', certificate: leaf.chainPem, privateKey: leaf.keyPem, associatedHostnames: ['api.example.com'] });
    expect(created.fingerprint).toBe(leaf.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(created).not.toHaveProperty('privateKey');
    await expect(store.createCertificate(account, { name: 'a', certificate: leaf.chainPem, privateKey: leaf.keyPem })).rejects.toMatchObject({ kind: 'conflict' });

    const mapping = await store.createMapping(account, { serviceName: 'svc', url: 'HTTPS://API.example.com:443/p?q=1', certificateId: created.id });
    expect(mapping.url).toBe('https://api.example.com/p?q=1');
    expect((await store.findMapping(account, 'svc', 'https://api.example.com/p?q=1'))?.certificateId).toBe(created.id);
    await expect(store.createMapping(account, { serviceName: 'svc', url: 'https://api.example.com/p?q=1', certificateId: created.id })).rejects.toMatchObject({ kind: 'conflict' });
    await expect(store.createMapping(account, { serviceName: 'svc2', url: 'https://x.example.com/', certificateId: 'nope' })).rejects.toMatchObject({ kind: 'not_found' });
    await expect(store.deleteCertificate(account, created.id)).rejects.toMatchObject({ kind: 'conflict' });

    const next = await issueCertificate(ca, { commonName: 'contract-a-2', usage: 'client' });
    const rotated = await store.updateCertificate(account, created.id, { certificate: next.chainPem, privateKey: next.keyPem });
    expect(rotated.version).toBe(created.version + 1);
    expect((await store.getCertificate(account, created.id))?.privateKey).toBe(next.keyPem);

    await store.deleteMapping(account, mapping.id);
    await store.deleteCertificate(account, created.id);
    expect(await store.listCertificates(account)).toEqual([]);
  });
});

describe('embedded store at rest', () => {
  it('keeps no certificate, key or document text in clear in Redis', async () => {
    const prefix = unique();
    const store = new CertificateStore(new EmbeddedBackend(redisClient, createKeyRing(randomBytes(32)), prefix));
    const leaf = await issueCertificate(ca, { commonName: 'at-rest', usage: 'client' });
    await store.createCertificate('acct', { name: 'secret-name-xyz', certificate: leaf.chainPem, privateKey: leaf.keyPem });
    const keys = await redisClient.keys(`${prefix}:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      const type = await redisClient.type(key);
      const values = type === 'hash' ? Object.values(await redisClient.hgetall(key)) : type === 'set' ? await redisClient.smembers(key) : [];
      for (const v of values) {
        expect(v).not.toContain('BEGIN');
        expect(v).not.toContain('secret-name-xyz');
        expect(v).not.toContain(leaf.keyPem.split('\n')[1]);
      }
    }
  });

  it('refuses at start a store sealed under another MASTER_KEY', async () => {
    const prefix = unique();
    await new EmbeddedBackend(redisClient, createKeyRing(randomBytes(32)), prefix).verify();
    await expect(new EmbeddedBackend(redisClient, createKeyRing(randomBytes(32)), prefix).verify()).rejects.toMatchObject({ kind: 'invalid' });
  });
});

describe('vault adapter behaviours', () => {
  it('renews an AppRole token before its TTL runs out, so reads keep working past the first TTL', async () => {
    const backend = new VaultBackend({ addr: vault.addr, roleId: 'relay-role', secretId: 'relay-secret', mount: 'secret', pathPrefix: unique(), timeoutMs: 2000 });
    await backend.verify();
    await backend.write('r/doc', { a: 1 });
    const renewals = (): number => vault.requests.filter((r) => r.path === '/v1/auth/token/renew-self').length;
    const before = renewals();
    await vi.waitFor(() => expect(renewals()).toBeGreaterThan(before + 1), { timeout: 8000, interval: 100 });
    expect((await backend.read('r/doc'))?.data).toEqual({ a: 1 });
    await backend.close();
  });

  it('logs in again once with AppRole when Vault answers 403 (token revoked)', async () => {
    const backend = new VaultBackend({ addr: vault.addr, roleId: 'relay-role', secretId: 'relay-secret', mount: 'secret', pathPrefix: unique(), timeoutMs: 2000 });
    await backend.verify();
    await backend.write('x/doc', { a: 1 });
    const logins = (): number => vault.requests.filter((r) => r.path === '/v1/auth/approle/login').length;
    const before = logins();
    vault.revokeAllTokens();
    expect((await backend.read('x/doc'))?.data).toEqual({ a: 1 });
    expect(logins()).toBe(before + 1);
    await backend.close();
  });

  it('gives up after its explicit timeout when Vault hangs, as unavailable', async () => {
    const backend = new VaultBackend({ addr: vault.addr, token: vault.rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 300 });
    await backend.verify();
    vault.hang(true);
    try {
      const started = Date.now();
      await expect(backend.read('any')).rejects.toMatchObject({ kind: 'unavailable' });
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      vault.hang(false);
    }
    await backend.close();
  });

  it('reports a sealed Vault as unavailable and unhealthy', async () => {
    const backend = new VaultBackend({ addr: vault.addr, token: vault.rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 2000 });
    await backend.verify();
    vault.seal();
    try {
      await expect(backend.read('any')).rejects.toMatchObject({ kind: 'unavailable', status: 503 });
      expect(await backend.health()).toEqual({ ok: false, detail: 'vault: sealed' });
    } finally {
      vault.unseal();
    }
    await backend.close();
  });

  it('fails at start, naming the setting, when the KV mount does not exist; a bad token fails as denied', async () => {
    const wrongMount = new VaultBackend({ addr: vault.addr, token: vault.rootToken, mount: 'nosuchmount', pathPrefix: 'x', timeoutMs: 2000 });
    await expect(wrongMount.verify()).rejects.toThrow(/VAULT_KV_MOUNT/);
    const badToken = new VaultBackend({ addr: vault.addr, token: 'hvs.not-a-token', mount: 'secret', pathPrefix: 'x', timeoutMs: 2000 });
    await expect(badToken.verify()).rejects.toMatchObject({ kind: 'denied' });
    const badRole = new VaultBackend({ addr: vault.addr, roleId: 'relay-role', secretId: 'wrong', mount: 'secret', pathPrefix: 'x', timeoutMs: 2000 });
    await expect(badRole.verify()).rejects.toBeInstanceOf(StoreError);
  });
});
