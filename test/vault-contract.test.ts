// One table of Vault API contract cases, run with the real node-vault client against
//   (a) the Vault-compatible test server in test/support/vault-server.ts, always,
//   (b) a real server, OpenBao's `bao server -dev` (test/support/bao.ts), whenever `bao` or `vault` is found, and
//   (c) a Vault of your own when VAULT_ADDR and VAULT_TOKEN (a root token, e.g. of `vault server -dev`) are set.
// So the test server cannot drift away from what a real server answers.
// Every case works under a random per-run prefix and the real-Vault run deletes what it wrote.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describeWithBao, startBao } from './support/bao.ts';
import type { Bao } from './support/bao.ts';
import { startVaultServer } from './support/vault-server.ts';
import type { VaultServer } from './support/vault-server.ts';

type Client = nodeVault.client;

interface VaultBody {
  errors?: string[];
  data?: { data?: unknown; metadata?: Record<string, unknown>; keys?: string[] } | null;
  [key: string]: unknown;
}

interface Target {
  addr: string;
  token: string;
  mount: string;
  /** Only when running against the test server. */
  server?: VaultServer;
  /** When the target is this test file's own (never a shared Vault): seals it, and unseals it again. */
  seal?(): Promise<void>;
  unseal?(): Promise<void>;
  /** An AppRole whose tokens may read `${mount}/data/${prefix}/*`. */
  appRole(): Promise<{ roleId: string; secretId: string; mountPoint: string }>;
}

interface Ctx {
  target: Target;
  /** A client with the root token (LIST verb), shared by the case. */
  root: Client;
  /** A fresh client; token defaults to the root token, '' sends none. */
  client(o?: { token?: string; noCustomHTTPVerbs?: boolean; timeout?: number }): Client;
  /** A path unique to this run and case. */
  path(name: string): string;
  data(path: string): string;
  meta(path: string): string;
  /** Raw HTTP with the root token, for status codes node-vault does not expose (200 vs 204). */
  raw(method: string, path: string): Promise<{ status: number; text: string }>;
}

interface Case {
  name: string;
  /** Why the case cannot run against a real Vault. */
  serverOnly?: string;
  /** Why the case runs only against a server of this test file's own (the test server, or OpenBao), never VAULT_ADDR. */
  ownServerOnly?: string;
  run(ctx: Ctx): Promise<void>;
}

// What every server answers (OpenBao and Vault); Vault (and the test server, which follows it) adds mount_type.
const ENVELOPE_KEYS = ['auth', 'data', 'lease_duration', 'lease_id', 'renewable', 'request_id', 'warnings', 'wrap_info'];
const OPTIONAL_ENVELOPE_KEYS = ['mount_type'];
const VERSION_METADATA_KEYS = ['created_time', 'custom_metadata', 'deletion_time', 'destroyed', 'version'];
const AUTH_KEYS = [
  'accessor', 'client_token', 'entity_id', 'lease_duration', 'metadata', 'mfa_requirement', 'num_uses', 'orphan',
  'policies', 'renewable', 'token_policies', 'token_type',
];
const LOOKUP_KEYS = [
  'accessor', 'creation_time', 'creation_ttl', 'display_name', 'entity_id', 'expire_time', 'explicit_max_ttl', 'id',
  'meta', 'num_uses', 'orphan', 'path', 'policies', 'renewable', 'ttl', 'type',
];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CAS_MISMATCH = 'check-and-set parameter did not match the current version';

/** The `{ statusCode, body }` of the node-vault error a call rejects with; fails if it resolves. */
async function vaultError(call: Promise<unknown>): Promise<{ statusCode: number; body: VaultBody }> {
  let result: unknown;
  try {
    result = await call;
  } catch (err) {
    const response = (err as { response?: { statusCode: number; body: VaultBody } }).response;
    if (response === undefined) throw err;
    return response;
  }
  throw new Error(`expected a Vault error, the call resolved with ${JSON.stringify(result)}`);
}

function expectEnvelope(body: VaultBody, mountType?: string): void {
  expect(Object.keys(body).filter((k) => !OPTIONAL_ENVELOPE_KEYS.includes(k)).sort()).toEqual(ENVELOPE_KEYS);
  expect(body).toMatchObject({ lease_id: '', renewable: false, lease_duration: 0, wrap_info: null, warnings: null });
  expect(body.request_id).toMatch(UUID);
  if (mountType !== undefined && 'mount_type' in body) expect(body.mount_type).toBe(mountType);
}

/** auth/token/create with the root token (on a throwaway client: node-vault adopts the created token). */
async function createToken(ctx: Ctx, ttl: string): Promise<string> {
  const res = await ctx.client().tokenCreate({ ttl });
  expect(res.auth.lease_duration).toBe(Number.parseInt(ttl, 10) * (ttl.endsWith('h') ? 3600 : 1));
  return res.auth.client_token as string;
}

const cases: Case[] = [
  {
    name: 'write then read round-trips data inside the exact KV v2 envelope',
    async run(ctx) {
      const p = ctx.data(ctx.path('round-trip'));
      const value = { user: 'alice', n: 2, nested: { list: [1, 'two'] } };
      const written = await ctx.root.write(p, { data: value });
      expectEnvelope(written, 'kv');
      expect(written.auth).toBeNull();
      expect(Object.keys(written.data).sort()).toEqual(VERSION_METADATA_KEYS);
      expect(written.data).toMatchObject({ version: 1, deletion_time: '', destroyed: false, custom_metadata: null });
      const read = await ctx.root.read(p);
      expectEnvelope(read, 'kv');
      expect(read.request_id).not.toBe(written.request_id);
      expect(Object.keys(read.data).sort()).toEqual(['data', 'metadata']);
      expect(read.data.data).toEqual(value);
      expect(Object.keys(read.data.metadata).sort()).toEqual(VERSION_METADATA_KEYS);
      expect(read.data.metadata).toEqual({ ...written.data });
      expect(Date.parse(read.data.metadata.created_time)).toBeGreaterThan(Date.now() - 60_000);
    },
  },
  {
    name: 'reads an older version with ?version=N and 404s a version that does not exist',
    async run(ctx) {
      const p = ctx.data(ctx.path('versions'));
      await ctx.root.write(p, { data: { v: 'one' } });
      expect((await ctx.root.write(p, { data: { v: 'two' } })).data.version).toBe(2);
      const old = await ctx.root.read(`${p}?version=1`);
      expect(old.data).toMatchObject({ data: { v: 'one' }, metadata: { version: 1 } });
      const latest = await ctx.root.read(p);
      expect(latest.data).toMatchObject({ data: { v: 'two' }, metadata: { version: 2 } });
      const missing = await vaultError(ctx.root.read(`${p}?version=3`));
      expect(missing).toEqual({ statusCode: 404, body: { errors: [] } });
    },
  },
  {
    name: 'cas=0 creates only: a second cas=0 write is a 400 check-and-set conflict',
    async run(ctx) {
      const p = ctx.data(ctx.path('cas'));
      expect((await ctx.root.write(p, { data: { first: true }, options: { cas: 0 } })).data.version).toBe(1);
      const conflict = await vaultError(ctx.root.write(p, { data: { second: true }, options: { cas: 0 } }));
      expect(conflict).toEqual({ statusCode: 400, body: { errors: [CAS_MISMATCH] } });
      const stale = await vaultError(ctx.root.write(p, { data: { second: true }, options: { cas: 2 } }));
      expect(stale).toEqual({ statusCode: 400, body: { errors: [CAS_MISMATCH] } });
      expect((await ctx.root.read(p)).data.data).toEqual({ first: true });
      expect((await ctx.root.write(p, { data: { second: true }, options: { cas: 1 } })).data.version).toBe(2);
    },
  },
  {
    name: 'a write without data is a 400 "no data provided" and creates nothing',
    async run(ctx) {
      const p = ctx.data(ctx.path('no-data'));
      const empty = await vaultError(ctx.root.write(p, {}));
      expect(empty).toEqual({ statusCode: 400, body: { errors: ['no data provided'] } });
      const onlyOptions = await vaultError(ctx.root.write(p, { options: { cas: 0 } }));
      expect(onlyOptions).toEqual({ statusCode: 400, body: { errors: ['no data provided'] } });
      expect(await vaultError(ctx.root.read(p))).toEqual({ statusCode: 404, body: { errors: [] } });
    },
  },
  {
    name: 'reading a missing secret is a 404 with errors: []',
    async run(ctx) {
      const missing = await vaultError(ctx.root.read(ctx.data(ctx.path('never-written'))));
      expect(missing).toEqual({ statusCode: 404, body: { errors: [] } });
    },
  },
  {
    name: 'soft delete answers 204; the read after it is a 404 carrying the envelope with data.data null',
    async run(ctx) {
      const p = ctx.data(ctx.path('soft-delete'));
      await ctx.root.write(p, { data: { doomed: true } });
      expect(await ctx.raw('DELETE', p)).toEqual({ status: 204, text: '' });
      const { statusCode, body } = await vaultError(ctx.root.read(p));
      expect(statusCode).toBe(404);
      expect(body).not.toHaveProperty('errors');
      expectEnvelope(body, 'kv');
      expect(body.data?.data).toBeNull();
      expect(body.data?.metadata).toMatchObject({ version: 1, destroyed: false });
      const deletionTime = String(body.data?.metadata?.deletion_time);
      expect(Date.parse(deletionTime)).toBeGreaterThan(Date.now() - 60_000);
    },
  },
  {
    name: 'metadata delete answers 204 and removes every version',
    async run(ctx) {
      const name = ctx.path('metadata-delete');
      await ctx.root.write(ctx.data(name), { data: { v: 1 } });
      await ctx.root.write(ctx.data(name), { data: { v: 2 } });
      expect(await ctx.raw('DELETE', ctx.meta(name))).toEqual({ status: 204, text: '' });
      expect(await vaultError(ctx.root.read(ctx.data(name)))).toEqual({ statusCode: 404, body: { errors: [] } });
      const v1 = await vaultError(ctx.root.read(`${ctx.data(name)}?version=1`));
      expect(v1).toEqual({ statusCode: 404, body: { errors: [] } });
    },
  },
  {
    name: 'LIST verb and GET ?list (noCustomHTTPVerbs) both list keys, folders ending in "/"',
    async run(ctx) {
      const base = ctx.path('list');
      for (const key of ['b', 'a', 'sub/c', 'sub/deeper/d']) {
        await ctx.root.write(ctx.data(`${base}/${key}`), { data: { key } });
      }
      const viaList = await ctx.root.list(ctx.meta(base));
      expectEnvelope(viaList, 'kv');
      expect(viaList.data).toEqual({ keys: ['a', 'b', 'sub/'] });
      const viaGet = await ctx.client({ noCustomHTTPVerbs: true }).list(ctx.meta(base));
      expect(viaGet.data).toEqual({ keys: ['a', 'b', 'sub/'] });
      expect((await ctx.root.list(ctx.meta(`${base}/sub`))).data).toEqual({ keys: ['c', 'deeper/'] });
      expect((await ctx.root.list(ctx.meta(`${base}/sub/`))).data).toEqual({ keys: ['c', 'deeper/'] });
      const server = ctx.target.server;
      if (server !== undefined) {
        const wire = server.requests.filter((r) => r.path === `/v1/${ctx.meta(base)}`);
        expect(wire).toEqual([
          { method: 'LIST', path: `/v1/${ctx.meta(base)}`, query: '' },
          { method: 'GET', path: `/v1/${ctx.meta(base)}`, query: '?list=1' },
        ]);
      }
    },
  },
  {
    name: 'listing a path with nothing under it is a 404 with errors: []',
    async run(ctx) {
      const p = ctx.meta(ctx.path('empty-folder'));
      expect(await vaultError(ctx.root.list(p))).toEqual({ statusCode: 404, body: { errors: [] } });
      const viaGet = await vaultError(ctx.client({ noCustomHTTPVerbs: true }).list(p));
      expect(viaGet).toEqual({ statusCode: 404, body: { errors: [] } });
    },
  },
  {
    name: 'an unknown mount is a 404 "no handler for route"',
    async run(ctx) {
      const p = `${ctx.path('no-such-mount').replace(/\//g, '-')}/data/x`;
      expect(await vaultError(ctx.root.read(p))).toEqual({
        statusCode: 404,
        body: { errors: [`no handler for route "${p}". route entry not found.`] },
      });
    },
  },
  {
    name: 'a bad or missing token is a 403 permission denied',
    async run(ctx) {
      const p = ctx.data(ctx.path('guarded'));
      await ctx.root.write(p, { data: { secret: 'x' } });
      for (const token of ['hvs.not-a-real-token', '']) {
        const { statusCode, body } = await vaultError(ctx.client({ token }).read(p));
        expect(statusCode).toBe(403);
        expect(body.errors).toContain('permission denied');
      }
    },
  },
  {
    name: 'lookup-self describes the token; renew-self on the root token is a 400',
    async run(ctx) {
      const self = await ctx.root.tokenLookupSelf();
      expectEnvelope(self);
      expect(Object.keys(self.data)).toEqual(expect.arrayContaining(LOOKUP_KEYS));
      expect(self.data).toMatchObject({ id: ctx.target.token, ttl: 0, expire_time: null, type: 'service' });
      expect(self.data.policies).toContain('root');
      const child = await createToken(ctx, '1h');
      const looked = (await ctx.client({ token: child }).tokenLookupSelf()).data;
      expect(looked).toMatchObject({ id: child, renewable: true, path: 'auth/token/create', creation_ttl: 3600 });
      expect(looked.ttl).toBeGreaterThan(3500);
      expect(looked.ttl).toBeLessThanOrEqual(3600);
      expect(Date.parse(looked.expire_time) - Date.now()).toBeGreaterThan(3500_000);
      expect(looked.accessor).toMatch(/.+/);
      await ctx.client({ token: child }).tokenRevokeSelf();
      const rootRenew = await vaultError(ctx.root.tokenRenewSelf({ increment: 60 }));
      expect(rootRenew.statusCode).toBe(400);
      expect(rootRenew.body.errors?.length).toBeGreaterThan(0);
    },
  },
  {
    name: 'sys/health answers 200 with the documented fields',
    async run(ctx) {
      const health = await ctx.root.health();
      expect(health).toMatchObject({
        initialized: true,
        sealed: false,
        standby: false,
        replication_dr_mode: expect.any(String),
        replication_performance_mode: expect.any(String),
        version: expect.stringMatching(/^\d+\.\d+\.\d+/),
        cluster_name: expect.any(String),
        cluster_id: expect.any(String),
      });
      if ('performance_standby' in health) expect(health.performance_standby).toBe(false); // Vault only
      expect(Math.abs(health.server_time_utc - Date.now() / 1000)).toBeLessThan(60);
      expect((await ctx.raw('GET', 'sys/health')).status).toBe(200);
    },
  },
  {
    name: 'sealed: calls are 503 "Vault is sealed" and health resolves with sealed: true',
    ownServerOnly: 'sealing a shared Vault would break it for everyone',
    async run(ctx) {
      const { seal, unseal } = ctx.target;
      if (seal === undefined || unseal === undefined) throw new Error('this target cannot be sealed');
      const p = ctx.data(ctx.path('sealed'));
      await ctx.root.write(p, { data: { kept: true } });
      const { roleId, secretId, mountPoint } = await ctx.target.appRole();
      await seal();
      try {
        const sealed = { statusCode: 503, body: { errors: ['Vault is sealed'] } };
        expect(await vaultError(ctx.root.read(p))).toEqual(sealed);
        expect(await vaultError(ctx.root.write(p, { data: { x: 1 } }))).toEqual(sealed);
        expect(await vaultError(ctx.root.list(ctx.meta(ctx.path(''))))).toEqual(sealed);
        expect(await vaultError(ctx.root.tokenLookupSelf())).toEqual(sealed);
        expect(await vaultError(ctx.client({ token: '' }).read(p))).toEqual(sealed);
        const login = ctx.client({ token: '' }).approleLogin({ role_id: roleId, secret_id: secretId, mount_point: mountPoint });
        expect(await vaultError(login)).toEqual(sealed);
        expect(await ctx.root.health()).toMatchObject({ initialized: true, sealed: true });
        expect((await ctx.raw('GET', 'sys/health')).status).toBe(503);
      } finally {
        await unseal();
      }
      expect((await ctx.root.read(p)).data.data).toEqual({ kept: true });
    },
  },
  {
    name: 'AppRole login returns auth.client_token, which node-vault adopts and can read with',
    async run(ctx) {
      const p = ctx.data(ctx.path('approle'));
      await ctx.root.write(p, { data: { for: 'approle' } });
      const { roleId, secretId, mountPoint } = await ctx.target.appRole();
      const client = ctx.client({ token: '' });
      const login = await client.approleLogin({ role_id: roleId, secret_id: secretId, mount_point: mountPoint });
      expectEnvelope(login);
      expect(login.data).toBeNull();
      expect(Object.keys(login.auth).sort()).toEqual(AUTH_KEYS);
      expect(login.auth).toMatchObject({ renewable: true, token_type: 'service', num_uses: 0 });
      expect(login.auth.client_token).toMatch(/.{8,}/);
      expect(login.auth.lease_duration).toBeGreaterThan(0);
      expect(client.token).toBe(login.auth.client_token);
      expect((await client.read(p)).data.data).toEqual({ for: 'approle' });
      const self = (await client.tokenLookupSelf()).data;
      expect(self).toMatchObject({ id: login.auth.client_token, path: `auth/${mountPoint}/login` });
      await client.tokenRevokeSelf();
    },
  },
  {
    name: 'AppRole login with a wrong secret id or role id is a 400 "invalid role or secret ID"',
    async run(ctx) {
      const { roleId, secretId, mountPoint } = await ctx.target.appRole();
      const invalid = { statusCode: 400, body: { errors: ['invalid role or secret ID'] } };
      const client = ctx.client({ token: '' });
      const wrongSecret = { role_id: roleId, secret_id: `${secretId}-wrong`, mount_point: mountPoint };
      expect(await vaultError(client.approleLogin(wrongSecret))).toEqual(invalid);
      const wrongRole = { role_id: randomUUID(), secret_id: secretId, mount_point: mountPoint };
      expect(await vaultError(client.approleLogin(wrongRole))).toEqual(invalid);
    },
  },
  {
    name: 'a token with a 1s TTL expires (403), while renew-self extends an identical one',
    async run(ctx) {
      const p = ctx.data(ctx.path('ttl'));
      await ctx.root.write(p, { data: { ok: true } });
      const renewed = ctx.client({ token: await createToken(ctx, '1s') });
      const renewal = await renewed.tokenRenewSelf({ increment: 60 });
      expect(renewal.auth).toMatchObject({ client_token: renewed.token, lease_duration: 60, renewable: true });
      const expiring = ctx.client({ token: await createToken(ctx, '1s') });
      expect((await expiring.read(p)).data.data).toEqual({ ok: true });
      await vi.waitFor(
        async () => {
          const { statusCode, body } = await vaultError(expiring.read(p));
          expect(statusCode).toBe(403);
          expect(body.errors).toContain('permission denied');
        },
        { timeout: 10_000, interval: 100 },
      );
      // The renewed token was created before the expired one with the same TTL: only the renewal keeps it alive.
      expect((await renewed.tokenLookupSelf()).data.ttl).toBeGreaterThan(30);
      expect((await renewed.read(p)).data.data).toEqual({ ok: true });
      expect((await vaultError(expiring.tokenRenewSelf({ increment: 60 }))).statusCode).toBe(403);
      await renewed.tokenRevokeSelf();
      expect((await vaultError(renewed.read(p))).statusCode).toBe(403);
    },
  },
  {
    name: 'revokeAllTokens() invalidates issued tokens but not the root token',
    serverOnly: 'drives the test server directly',
    async run(ctx) {
      const server = ctx.target.server as VaultServer;
      const p = ctx.data(ctx.path('revoke-all'));
      await ctx.root.write(p, { data: { ok: true } });
      const issued = ctx.client({ token: server.createToken({ ttlSeconds: 600, policies: ['default'] }) });
      expect((await issued.read(p)).data.data).toEqual({ ok: true });
      server.revokeAllTokens();
      expect(await vaultError(issued.read(p))).toEqual({ statusCode: 403, body: { errors: ['permission denied'] } });
      expect((await ctx.root.read(p)).data.data).toEqual({ ok: true });
    },
  },
  {
    name: 'hang mode: a client with rpDefaults.timeout rejects instead of waiting forever',
    serverOnly: 'a real Vault cannot be told to stop answering',
    async run(ctx) {
      const server = ctx.target.server as VaultServer;
      const p = ctx.data(ctx.path('hang'));
      await ctx.root.write(p, { data: { ok: true } });
      const client = ctx.client({ timeout: 300 });
      expect((await client.read(p)).data.data).toEqual({ ok: true });
      server.hang(true);
      try {
        const started = Date.now();
        const err = await client.read(p).then(
          () => new Error('resolved although the server hangs'),
          (e: unknown) => e as Error & { code?: string; response?: unknown },
        );
        const elapsed = Date.now() - started;
        expect(err).toMatchObject({ code: 'ECONNABORTED' });
        expect(err).not.toHaveProperty('response');
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(5_000);
        expect(await client.health()).toMatchObject({ sealed: false }); // health still answers
        expect(server.requests.at(-2)).toEqual({ method: 'GET', path: `/v1/${p}`, query: '' });
      } finally {
        server.hang(false);
      }
      expect((await client.read(p)).data.data).toEqual({ ok: true });
    },
  },
];

/** Registers one `it` per case against the target that `setup` provides. */
function runContract(
  against: 'test server' | 'OpenBao' | 'real Vault',
  setup: () => Promise<{ target: Target; teardown(): Promise<void> }>,
): void {
  const runId = randomUUID().slice(0, 8);
  const prefix = `vault-contract-${runId}`;
  let target: Target | undefined;
  let teardown: (() => Promise<void>) | undefined;

  const makeClient = (t: Target, o: { token?: string; noCustomHTTPVerbs?: boolean; timeout?: number } = {}): Client => {
    const options: nodeVault.VaultOptions & { rpDefaults?: { timeout: number } } = {
      endpoint: t.addr,
      token: o.token ?? t.token,
      noCustomHTTPVerbs: o.noCustomHTTPVerbs ?? false,
      debug: () => undefined,
    };
    if (o.timeout !== undefined) options.rpDefaults = { timeout: o.timeout };
    const client = nodeVault(options);
    client.token = o.token ?? t.token; // node-vault falls back to $VAULT_TOKEN for a falsy token
    return client;
  };

  beforeAll(async () => {
    ({ target, teardown } = await setup());
  });
  afterAll(async () => {
    if (target !== undefined) await deleteTree(makeClient(target), target.mount, prefix);
    await teardown?.();
  });

  cases.forEach((c, index) => {
    const slug = `${String(index).padStart(2, '0')}-${c.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`;
    const body = async (): Promise<void> => {
      if (target === undefined) throw new Error('target not set up');
      const t = target;
      await c.run({
        target: t,
        root: makeClient(t),
        client: (o) => makeClient(t, o),
        path: (name) => `${prefix}/${slug}/${name}`.replace(/\/+$/, ''),
        data: (p) => `${t.mount}/data/${p}`,
        meta: (p) => `${t.mount}/metadata/${p}`,
        raw: async (method, p) => {
          const res = await fetch(`${t.addr}/v1/${p}`, { method, headers: { 'X-Vault-Token': t.token } });
          return { status: res.status, text: await res.text() };
        },
      });
    };
    if (c.serverOnly !== undefined && against !== 'test server') {
      it.skip(`${c.name} [skipped against a real Vault, server-only: ${c.serverOnly}]`, body);
    } else if (c.ownServerOnly !== undefined && against === 'real Vault') {
      it.skip(`${c.name} [skipped against VAULT_ADDR: ${c.ownServerOnly}]`, body);
    } else it(c.name, body);
  });
}

/** Removes every secret (all versions) under `prefix`, depth first. */
async function deleteTree(client: Client, mount: string, prefix: string): Promise<void> {
  let keys: string[];
  try {
    keys = (await client.list(`${mount}/metadata/${prefix}`)).data.keys;
  } catch {
    return; // nothing left (404) or unreachable
  }
  for (const key of keys) {
    if (key.endsWith('/')) await deleteTree(client, mount, `${prefix}/${key.slice(0, -1)}`);
    else await client.delete(`${mount}/metadata/${prefix}/${key}`);
  }
}

describe('Vault API contract: test server (test/support/vault-server.ts)', () => {
  runContract('test server', async () => {
    const approle = { roleId: randomUUID(), secretId: randomUUID() };
    const server = await startVaultServer({ approle });
    return {
      target: {
        addr: server.addr,
        token: server.rootToken,
        mount: 'secret',
        server,
        seal: async () => server.seal(),
        unseal: async () => server.unseal(),
        appRole: async () => ({ ...approle, mountPoint: 'approle' }),
      },
      teardown: () => server.close(),
    };
  });

  it('handles LIST on every request of a keep-alive connection, after sized and chunked bodies', async () => {
    const server = await startVaultServer({ rootToken: 'root' });
    try {
      const json = JSON.stringify({ data: { x: 1 } });
      const head = (line: string, extra = ''): string =>
        `${line} HTTP/1.1\r\nHost: t\r\nX-Vault-Token: root\r\n${extra}`;
      const wire =
        `${head('POST /v1/secret/data/f/a', `Content-Length: ${json.length}\r\n`)}\r\n${json}` +
        `${head('LIST /v1/secret/metadata/f')}\r\n` +
        `${head('POST /v1/secret/data/f/b', 'Transfer-Encoding: chunked\r\n')}\r\n` +
        `${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n` +
        `${head('LIST /v1/secret/metadata/f', 'Connection: close\r\n')}\r\n`;
      const port = Number(new URL(server.addr).port);
      const answer = await new Promise<string>((resolve, reject) => {
        let out = '';
        const socket = connect(port, '127.0.0.1', () => socket.write(wire)); // the last request closes
        socket.on('data', (d: Buffer) => (out += d.toString())).on('close', () => resolve(out)).on('error', reject);
      });
      expect(answer.match(/HTTP\/1\.1 \d{3}/g)).toEqual(Array(4).fill('HTTP/1.1 200'));
      expect(answer).toContain('"keys":["a"]');
      expect(answer).toContain('"keys":["a","b"]');
      expect(server.requests.map((r) => r.method)).toEqual(['POST', 'LIST', 'POST', 'LIST']);
    } finally {
      await server.close();
    }
  });
});

const realAddr = process.env.VAULT_ADDR;
const realToken = process.env.VAULT_TOKEN;
const REAL_LABEL = realAddr
  ? `Vault API contract: real Vault at ${realAddr} (VAULT_ADDR is set)`
  : 'Vault API contract: real Vault — skipped: set VAULT_ADDR and VAULT_TOKEN (a root token) to run';

describe.runIf(realAddr !== undefined && realAddr !== '')(REAL_LABEL, () => {
  if (realAddr && !realToken) {
    it('needs VAULT_TOKEN as well as VAULT_ADDR', () => {
      throw new Error('VAULT_ADDR is set but VAULT_TOKEN is not: the real-Vault contract run needs a root token');
    });
    return;
  }
  runContract('real Vault', () => realTarget(realAddr as string, realToken as string, process.env.VAULT_KV_MOUNT ?? 'secret'));
});

describeWithBao('Vault API contract: OpenBao (bao server -dev)', () => {
  let bao: Bao | undefined;
  runContract('OpenBao', async () => {
    const server = await startBao();
    bao = server;
    const real = await realTarget(server.addr, server.rootToken, 'secret');
    return {
      target: { ...real.target, seal: () => server.seal(), unseal: () => server.unseal() },
      teardown: async () => {
        await real.teardown();
        await bao?.close();
      },
    };
  });
});

/** A Vault of the test's own or the user's: an AppRole mount and policy of its own, removed afterwards. */
async function realTarget(addr: string, token: string, mount: string): Promise<{ target: Target; teardown(): Promise<void> }> {
  const root = nodeVault({ endpoint: addr, token, debug: () => undefined });
  const suffix = randomUUID().slice(0, 8);
  const mountPoint = `approle-contract-${suffix}`;
  const policy = `vault-contract-${suffix}`;
  let appRole: Promise<{ roleId: string; secretId: string; mountPoint: string }> | undefined;
  const setUpAppRole = async (): Promise<{ roleId: string; secretId: string; mountPoint: string }> => {
    await root.write(`sys/auth/${mountPoint}`, { type: 'approle' });
    await root.write(`sys/policies/acl/${policy}`, {
      policy: `path "${mount}/data/vault-contract-*" { capabilities = ["read"] }`,
    });
    await root.write(`auth/${mountPoint}/role/contract`, { token_policies: [policy], token_ttl: '5m' });
    const roleId: string = (await root.read(`auth/${mountPoint}/role/contract/role-id`)).data.role_id;
    const secretId: string = (await root.write(`auth/${mountPoint}/role/contract/secret-id`, {})).data.secret_id;
    return { roleId, secretId, mountPoint };
  };
  return {
    target: { addr, token, mount, appRole: () => (appRole ??= setUpAppRole()) },
    teardown: async () => {
      if (appRole === undefined) return;
      await root.delete(`sys/auth/${mountPoint}`);
      await root.delete(`sys/policies/acl/${policy}`);
    },
  };
}
