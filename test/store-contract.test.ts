/**
 * One contract for both certificate-store backends: the embedded Redis store (sealed under MASTER_KEY) and
 * Vault KV v2 through node-vault (and the in-memory backend the unit tests use), against a real server: OpenBao (`bao server -dev`, test/support/bao.ts) with
 * a token, and with the AppRole and least-privilege policy that deploy/vault/init.sh sets up on a KV v2 mount
 * that is not the default one; against a Vault of your own as well when VAULT_ADDR and VAULT_TOKEN are set.
 * Then the Vault-only behaviours against OpenBao: renewal, revocation and AppRole re-login, sealing, a wrong
 * mount failing at start; and, against the home-made server (test/support/vault-server.ts), the faults a real
 * server cannot produce on demand (no answer, a connection cut mid-response).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { describeWithBao, findBao, runInitScript, startBao } from './support/bao.ts';
import type { Bao, InitResult } from './support/bao.ts';
import { startVaultServer } from './support/vault-server.ts';

let redis: TestRedis;
let redisClient: Redis;
let bao: Bao | undefined;
/** The relay's AppRole from deploy/vault/init.sh, KV v2 at relay-kv/ under the least-privilege policy. */
let init: InitResult;
let ca: CA;

beforeAll(async () => {
  redis = await startTestRedis();
  redisClient = redis.client();
  ca = await createCA('store-contract-ca');
  if (findBao() !== undefined) {
    bao = await startBao();
    init = await runInitScript(bao, { mount: 'relay-kv', pathPrefix: 'contract' });
  }
});

afterAll(async () => {
  await bao?.close();
  await redis?.close();
});

const server = (): Bao => {
  if (bao === undefined) throw new Error('no OpenBao server');
  return bao;
};

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
];
if (findBao() !== undefined) {
  adapters.push(
    {
      name: 'vault (OpenBao, token, secret/)',
      make: () => new VaultBackend({ addr: server().addr, token: server().rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 5000 }),
    },
    {
      // The policy grants exactly deploy/vault/mtls-relay-policy.hcl's rights on relay-kv/data/contract/*.
      name: 'vault (OpenBao, AppRole of deploy/vault/init.sh, least-privilege policy, relay-kv/)',
      make: () =>
        new VaultBackend({
          addr: server().addr,
          roleId: init.roleId,
          secretId: init.secretId,
          mount: init.mount,
          pathPrefix: `${init.pathPrefix}/${unique()}`,
          timeoutMs: 5000,
        }),
    },
  );
}
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

interface TokenInfo {
  accessor: string;
  meta: Record<string, string> | null;
  ttl: number;
  last_renewal_time?: number;
  issue_time: string;
}

/** The live tokens that AppRole logins of `role` were given (looked up by accessor with the root token). */
async function tokensOfRole(b: Bao, role: string): Promise<TokenInfo[]> {
  const list = await b.http('LIST', 'auth/token/accessors');
  const accessors = ((list.json as { data?: { keys?: string[] } }).data?.keys ?? []);
  const infos: TokenInfo[] = [];
  for (const accessor of accessors) {
    const r = await b.http('POST', 'auth/token/lookup-accessor', { accessor });
    const data = (r.json as { data?: TokenInfo }).data;
    if (r.status === 200 && data?.meta?.['role_name'] === role) infos.push(data);
  }
  return infos;
}

describeWithBao('vault adapter behaviours (OpenBao)', () => {
  /** A role of its own (init.sh with short token TTLs), so that its tokens can be told apart. */
  const shortLivedRole = async (name: string, ttl: string, maxTtl: string): Promise<InitResult> =>
    runInitScript(server(), {
      mount: 'relay-kv',
      pathPrefix: 'contract',
      roleName: name,
      extraEnv: { VAULT_TOKEN_TTL: ttl, VAULT_TOKEN_MAX_TTL: maxTtl },
    });

  // The three tests that wait several TTLs run side by side (each on a role or token of its own); the sealing
  // test below starts only once they are done.
  it.concurrent('renews an AppRole token before its TTL runs out: the same token keeps working past several TTLs', async () => {
    const role = await shortLivedRole('renewal', '4s', '1h');
    const backend = new VaultBackend({ addr: server().addr, roleId: role.roleId, secretId: role.secretId, mount: 'relay-kv', pathPrefix: `contract/${unique()}`, timeoutMs: 5000 });
    await backend.verify();
    await backend.write('r/doc', { a: 1 });
    const [first] = await tokensOfRole(server(), 'renewal');
    expect(first).toBeDefined();
    // More than two TTLs later: still one token, the first one, renewed (last_renewal_time) and alive. (TTLs of a
    // few seconds leave the renewal, due at two thirds, more than a second of slack on a busy machine.)
    await new Promise((r) => setTimeout(r, 9_000));
    expect((await backend.read('r/doc'))?.data).toEqual({ a: 1 });
    const now = await tokensOfRole(server(), 'renewal');
    expect(now.map((t) => t.accessor)).toEqual([first?.accessor]);
    expect(now[0]?.last_renewal_time).toBeGreaterThan(0);
    await backend.close();
  });

  it.concurrent('replaces an AppRole token by a fresh login when it reaches its max TTL (renewal refused), with no call needed', async () => {
    const role = await shortLivedRole('max-ttl', '3s', '4s');
    const backend = new VaultBackend({ addr: server().addr, roleId: role.roleId, secretId: role.secretId, mount: 'relay-kv', pathPrefix: `contract/${unique()}`, timeoutMs: 5000 });
    await backend.verify();
    await backend.write('m/doc', { a: 1 });
    const [first] = await tokensOfRole(server(), 'max-ttl');
    expect(first).toBeDefined();
    // No call for longer than the max TTL: the first token is gone, and a fresh login has a live one ready.
    await new Promise((r) => setTimeout(r, 6_500));
    const live = await tokensOfRole(server(), 'max-ttl');
    expect(live.length).toBeGreaterThan(0);
    expect(live.map((t) => t.accessor)).not.toContain(first?.accessor);
    expect((await backend.read('m/doc'))?.data).toEqual({ a: 1 });
    await backend.close();
  });

  it.concurrent('renews a plain token (VAULT_TOKEN) with a TTL the same way', async () => {
    const created = await server().http('POST', 'auth/token/create', { ttl: '4s', renewable: true, policies: ['default'] });
    const token = (created.json as { auth: { client_token: string } }).auth.client_token;
    const backend = new VaultBackend({ addr: server().addr, token, mount: 'secret', pathPrefix: unique(), timeoutMs: 5000 });
    // lookup-self at start gives the TTL; the default policy may not write: verify() is not the point here.
    await expect(backend.verify()).rejects.toMatchObject({ kind: 'denied' });
    await new Promise((r) => setTimeout(r, 5_000));
    const self = await server().http('GET', 'auth/token/lookup-self', undefined, token);
    expect(self.status).toBe(200);
    expect((self.json as { data: { last_renewal_time?: number } }).data.last_renewal_time).toBeGreaterThan(0);
    await backend.close();
  });

  it('logs in again with AppRole when its token is revoked, and the read succeeds', async () => {
    const role = await shortLivedRole('revoked', '1h', '24h');
    const backend = new VaultBackend({ addr: server().addr, roleId: role.roleId, secretId: role.secretId, mount: 'relay-kv', pathPrefix: `contract/${unique()}`, timeoutMs: 5000 });
    await backend.verify();
    await backend.write('x/doc', { a: 1 });
    const before = await tokensOfRole(server(), 'revoked');
    expect(before).toHaveLength(1);
    const revoked = await server().http('POST', 'auth/token/revoke-accessor', { accessor: before[0]?.accessor });
    expect(revoked.status).toBe(204);
    expect(await tokensOfRole(server(), 'revoked')).toEqual([]);
    expect((await backend.read('x/doc'))?.data).toEqual({ a: 1 });
    const after = await tokensOfRole(server(), 'revoked');
    expect(after).toHaveLength(1);
    expect(after[0]?.accessor).not.toBe(before[0]?.accessor);
    await backend.close();
  });

  it('reports a sealed Vault as unavailable (503) and unhealthy, and works again once unsealed', async () => {
    const backend = new VaultBackend({ addr: server().addr, token: server().rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 5000 });
    await backend.verify();
    await backend.write('s/doc', { kept: true });
    await server().seal();
    try {
      await expect(backend.read('s/doc')).rejects.toMatchObject({ kind: 'unavailable', status: 503 });
      await expect(backend.write('s/doc', { kept: false })).rejects.toMatchObject({ kind: 'unavailable', status: 503 });
      expect(await backend.health()).toEqual({ ok: false, detail: 'vault: sealed' });
    } finally {
      await server().unseal();
    }
    expect((await backend.read('s/doc'))?.data).toEqual({ kept: true });
    expect((await backend.health()).ok).toBe(true);
    await backend.close();
  });

  it('fails at start, naming the setting, when the KV mount does not exist; a bad token or AppRole secret fails as denied or invalid', async () => {
    const wrongMount = new VaultBackend({ addr: server().addr, token: server().rootToken, mount: 'nosuchmount', pathPrefix: 'x', timeoutMs: 5000 });
    await expect(wrongMount.verify()).rejects.toThrow(/VAULT_KV_MOUNT/);
    const badToken = new VaultBackend({ addr: server().addr, token: 's.not-a-token', mount: 'secret', pathPrefix: 'x', timeoutMs: 5000 });
    await expect(badToken.verify()).rejects.toMatchObject({ kind: 'denied' });
    const badRole = new VaultBackend({ addr: server().addr, roleId: init.roleId, secretId: 'wrong', mount: 'relay-kv', pathPrefix: 'contract/x', timeoutMs: 5000 });
    await expect(badRole.verify()).rejects.toBeInstanceOf(StoreError);
  });

  it('under the least-privilege policy, a path outside the relay folder is denied (403), never taken for an outage', async () => {
    const outside = new VaultBackend({ addr: server().addr, roleId: init.roleId, secretId: init.secretId, mount: 'relay-kv', pathPrefix: 'elsewhere', timeoutMs: 5000 });
    await expect(outside.verify()).rejects.toMatchObject({ kind: 'denied', status: 403 });
    await expect(outside.read('doc')).rejects.toMatchObject({ kind: 'denied', status: 403 });
    await outside.close();
  });
});

describe('vault adapter faults (home-made server: a real one cannot be told to misbehave)', () => {
  it('a connection cut in the middle of an answer is unavailable (a retryable outage), and the next call works', async () => {
    const vault = await startVaultServer();
    const backend = new VaultBackend({ addr: vault.addr, token: vault.rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 2000 });
    try {
      await backend.verify();
      await backend.write('cut/doc', { a: 1 });
      vault.cut(true);
      await expect(backend.read('cut/doc')).rejects.toMatchObject({ kind: 'unavailable' });
      await expect(backend.list('cut')).rejects.toMatchObject({ kind: 'unavailable' });
      vault.cut(false);
      expect((await backend.read('cut/doc'))?.data).toEqual({ a: 1 });
    } finally {
      await backend.close();
      await vault.close();
    }
  });

  it('gives up after its explicit timeout when Vault hangs, as unavailable', async () => {
    const vault = await startVaultServer();
    const backend = new VaultBackend({ addr: vault.addr, token: vault.rootToken, mount: 'secret', pathPrefix: unique(), timeoutMs: 300 });
    try {
      await backend.verify();
      vault.hang(true);
      const started = Date.now();
      await expect(backend.read('any')).rejects.toMatchObject({ kind: 'unavailable' });
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      vault.hang(false);
      await backend.close();
      await vault.close();
    }
  });
});
