/**
 * Starts the whole relay for one test file: a private Redis (the store, or Vault: a server the test file started),
 * the real api and worker processes, and a CertificateStore in the test process (same Redis, same master key,
 * same prefix) for seeding certificates and mappings the way the admin API does (store change published).
 */
import { request } from 'undici';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { createKeyRing } from '../../packages/shared/src/crypto.ts';
import { CertificateStore, EmbeddedBackend, storeChangeChannel, VaultBackend } from '../../packages/shared/src/store/index.ts';
import { mintToken } from '../../scripts/lib/tokens.ts';
import { shardLayout } from '../../packages/shared/src/shards.ts';
import type { DocumentBackend } from '../../packages/shared/src/store/index.ts';
import { startTestRedis } from './redis.ts';
import type { TestRedis } from './redis.ts';
import { startService } from './services.ts';
import type { ServiceProcess } from './services.ts';

export type StoreKind = 'embedded' | 'vault';

export interface Relay {
  kind: StoreKind;
  redis: TestRedis;
  /** The Vault-API server and credentials the relay uses (kind 'vault'). */
  vault: VaultTarget | undefined;
  prefix: string;
  masterKey: string;
  env: Record<string, string>;
  api: ServiceProcess;
  workers: ServiceProcess[];
  store: CertificateStore;
  backend: DocumentBackend;
  /** Redis client of the test process (for inspecting keys). */
  client: Redis;
  startWorker(extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /**
   * Headers that authenticate a test request as an administrator allowed on every account. Every test
   * request to the API spreads these in; the auth layer decides what they contain.
   */
  auth(): Record<string, string>;
  close(): Promise<void>;
}

export interface RelayOptions {
  kind?: StoreKind;
  workers?: number;
  /** PEM files the workers trust for target servers (TARGET_CA_FILE). */
  targetCaPem?: string;
  env?: Record<string, string>;
  redis?: TestRedis;
  /**
   * Required with kind 'vault': the Vault-API server of the test file (OpenBao, test/support/bao.ts). The relay
   * logs in with `token` or with `roleId`/`secretId` (AppRole); the test process seeds the store with `adminToken`.
   */
  vault?: VaultTarget;
  /** Drop the services' output once they are up instead of keeping it (the bench). */
  discardOutput?: boolean;
}

export interface VaultTarget {
  addr: string;
  /** The token the test process seeds the store with (a root token). */
  adminToken: string;
  token?: string;
  roleId?: string;
  secretId?: string;
  mount?: string;
  pathPrefix?: string;
}

export async function startRelay(opts: RelayOptions = {}): Promise<Relay> {
  const kind = opts.kind ?? 'embedded';
  const redis = opts.redis ?? (await startTestRedis());
  if (kind === 'vault' && opts.vault === undefined) throw new Error('startRelay: kind "vault" needs the vault option (a server from test/support/bao.ts)');
  const target: VaultTarget | undefined = kind === 'vault' ? opts.vault : undefined;
  const vaultEnv: Record<string, string> =
    target === undefined
      ? {}
      : {
          VAULT_ADDR: target.addr,
          ...(target.token === undefined ? {} : { VAULT_TOKEN: target.token }),
          ...(target.roleId === undefined ? {} : { VAULT_ROLE_ID: target.roleId }),
          ...(target.secretId === undefined ? {} : { VAULT_SECRET_ID: target.secretId }),
          ...(target.mount === undefined ? {} : { VAULT_KV_MOUNT: target.mount }),
          ...(target.pathPrefix === undefined ? {} : { VAULT_PATH_PREFIX: target.pathPrefix }),
        };
  const prefix = opts.env?.['QUEUE_PREFIX'] ?? `t${randomBytes(4).toString('hex')}`;
  const shards = shardLayout(prefix, Number(opts.env?.['QUEUE_SHARDS'] ?? 1));
  const masterKey = randomBytes(32).toString('base64');
  const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-e2e-'));
  const env: Record<string, string> = {
    REDIS_URL: redis.url,
    QUEUE_PREFIX: prefix,
    MASTER_KEY: masterKey,
    TARGET_ALLOWLIST: '127.0.0.1,::1,localhost',
    CONNECT_TIMEOUT_MS: '2000',
    HEADERS_TIMEOUT_MS: '3000',
    BODY_TIMEOUT_MS: '3000',
    TARGET_TIMEOUT_MS: '4000',
    SYNC_WAIT_MS: '15000',
    FORWARD_ATTEMPTS: '2',
    RETRY_BASE_DELAY_MS: '50',
    CERT_CACHE_TTL_SECONDS: '3600',
    WORKER_CONCURRENCY: '8',
    // Authentication is always on; relay.auth() signs an admin token for every account with this secret.
    AUTH_JWT_SECRET: randomBytes(32).toString('base64'),
    ...vaultEnv,
    ...opts.env,
  };
  if (opts.targetCaPem !== undefined) {
    const caFile = join(dir, 'target-ca.pem');
    writeFileSync(caFile, opts.targetCaPem);
    env['TARGET_CA_FILE'] = caFile;
  }

  const client = redis.client();
  const ring = createKeyRing(Buffer.from(masterKey, 'base64'));
  const backend: DocumentBackend =
    target === undefined
      ? new EmbeddedBackend(client, ring, shards.keyPrefix, { byAccount: shards.count > 1 })
      : new VaultBackend({
          addr: target.addr,
          token: target.adminToken,
          mount: target.mount ?? 'secret',
          pathPrefix: target.pathPrefix ?? 'mtls-relay',
          timeoutMs: 5000,
        });
  const store = new CertificateStore(backend, {
    onChange: async (accountId) => {
      await client.publish(storeChangeChannel(prefix), accountId);
    },
  });

  const workers: ServiceProcess[] = [];
  const startWorker = async (extraEnv: Record<string, string> = {}): Promise<ServiceProcess> => {
    const w = await startService('worker', { ...env, ...extraEnv }, opts.discardOutput === true ? { discardOutput: 'after-start' } : {});
    workers.push(w);
    return w;
  };
  // Start workers first: they verify the store (and create its key check) before the API takes requests.
  for (let i = 0; i < (opts.workers ?? 1); i++) await startWorker();
  const api = await startService('api', env, opts.discardOutput === true ? { discardOutput: 'after-start' } : {});
  const secret = env['AUTH_JWT_SECRET'];
  const adminToken =
    secret === undefined || secret === ''
      ? undefined
      : await mintToken({
          secret,
          roles: [env['AUTH_ADMIN_ROLE'] ?? 'admin'],
          accounts: ['*'],
          ttlSeconds: 6 * 3600,
          subject: 'e2e-admin',
          issuer: env['AUTH_JWT_ISSUER'],
          audience: env['AUTH_JWT_AUDIENCE']?.split(',').filter((a) => a !== ''),
        });

  const relay: Relay = {
    kind,
    redis,
    vault: target,
    prefix,
    masterKey,
    env,
    api,
    workers,
    store,
    backend,
    client,
    startWorker,
    auth: (): Record<string, string> => (adminToken === undefined ? {} : { authorization: `Bearer ${adminToken}` }),
    close: async () => {
      // relay.api, not the first api: a test may have replaced it with a new process.
      await Promise.all([relay.api.stop(), ...workers.map((w) => w.stop())]);
      await backend.close();
      if (opts.redis === undefined) await redis.close();
      else client.disconnect();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return relay;
}

/**
 * Settings for the crash and stall tests: a 2 s job lock (so that a job whose worker died or was cut off is
 * taken over within seconds) and target timeouts under it, debug logs (the tests read the attempt lines).
 */
export const SHORT_LOCK_ENV: Readonly<Record<string, string>> = {
  LOG_LEVEL: 'debug',
  JOB_LOCK_MS: '2000',
  TARGET_TIMEOUT_MS: '1800',
  HEADERS_TIMEOUT_MS: '1700',
  BODY_TIMEOUT_MS: '1700',
  SYNC_WAIT_MS: '20000',
  FORWARD_ATTEMPTS: '3',
};

/** One forward through the relay's api as an administrator, to `targetUrl`, with a small body for non-GETs. */
export async function forwardThrough(
  relay: Relay,
  account: string,
  method: string,
  targetUrl: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await request(`${relay.api.url}/mtls/account/${account}`, {
    method: method as 'GET',
    headers: { ...relay.auth(), 'lp-forward-url': targetUrl, ...headers },
    body: method === 'GET' ? null : 'payload',
  });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}
