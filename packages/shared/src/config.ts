import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parseAllowlist } from './net-policy.ts';

/** `"true"`/`"1"`/`"yes"` → true, `"false"`/`"0"`/`"no"`/empty → false; anything else is an error. */
const bool = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return fallback;
      const v = value.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true or false, got "${value}"` });
      return z.NEVER;
    });

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return fallback;
      if (!/^\d+$/.test(value.trim())) {
        ctx.addIssue({ code: 'custom', message: `expected a whole number, got "${value}"` });
        return z.NEVER;
      }
      const n = Number(value);
      if (n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${min} and ${max}, got ${n}` });
        return z.NEVER;
      }
      return n;
    });

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const list = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0));

const base64Key = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v.trim() === '') return undefined;
    const key = Buffer.from(v.trim(), 'base64');
    if (key.length !== 32) {
      ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, base64-encoded (for example: openssl rand -base64 32)' });
      return z.NEVER;
    }
    return key;
  });

const url = (fallback?: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const value = v === undefined || v.trim() === '' ? fallback : v.trim();
      if (value === undefined) return undefined;
      if (!URL.canParse(value)) {
        ctx.addIssue({ code: 'custom', message: `is not a URL: "${value}"` });
        return z.NEVER;
      }
      return value;
    });

/** JWT algorithms the relay can be configured to accept ("none" is never one of them). */
export const JWT_ALGORITHMS: readonly string[] = Object.freeze([
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
]);
const JWT_ALGORITHMS_TEXT = JWT_ALGORITHMS.join(', ');

const envSchema = z.object({
  // --- runtime
  NODE_ENV: z.enum(['production', 'development', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  // --- Redis and queues
  REDIS_URL: url('redis://127.0.0.1:6379'),
  /**
   * The api's Redis commands fail after this long without an answer (503). An enqueue that times out is
   * withdrawn when Redis allows it; otherwise the answer says its outcome is unknown (enqueue_uncertain).
   */
  REDIS_COMMAND_TIMEOUT_MS: int(5_000, 100, 60_000),
  /** Prefix of every Redis key the relay writes (BullMQ queues, results, store, pub/sub channels). */
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9:{}_-]{1,64}$/, 'letters, digits, ":", "{", "}", "_" or "-"').default('mtls-relay'),

  // --- API
  PORT: int(8080, 0, 65535),
  HOST: z.string().default('0.0.0.0'),
  BODY_LIMIT_BYTES: int(10 * 1024 * 1024, 1, 512 * 1024 * 1024),
  MAX_HEADER_BYTES: int(16 * 1024, 1024, 1024 * 1024),
  /** More request header lines than this → 431. */
  MAX_HEADER_COUNT: int(100, 10, 10_000),
  /** A caller that has not sent its complete request headers by then gets 408 (slowloris). */
  REQUEST_HEADERS_TIMEOUT_MS: int(20_000, 100, 600_000),
  /** A caller that has not sent its complete request (headers and body) by then gets 408. */
  REQUEST_TIMEOUT_MS: int(60_000, 100, 3_600_000),
  /** How long a synchronous caller is kept waiting before 504 with the job's Location. */
  SYNC_WAIT_MS: int(30_000, 100, 600_000),
  /** Group commit: a batch job closes at this many bytes of forwards (a larger forward travels alone). */
  FORWARD_BATCH_BYTES: int(1024 * 1024, 1024, 64 * 1024 * 1024),
  /** Group commit: batch adds one api process keeps in flight; forwards arriving meanwhile join the next batch. */
  FORWARD_BATCHES_IN_FLIGHT: int(1, 1, 64),
  /**
   * How the api seals a batch's requests: `batch`, in one piece per batch (one cipher set-up on each side); `forward`,
   * each forward's on its own, as versions before 2026-12-07 wrote them and their workers read (for a rolling upgrade
   * in which older workers still run: README "Upgrades").
   */
  FORWARD_REQUEST_SEALING: z.enum(['batch', 'forward']).default('batch'),
  /**
   * How a worker seals the responses it records: `group`, the small responses of one job recorded together in one
   * piece (one cipher set-up per group on each side); `forward`, each on its own, the only format apis
   * without response groups read (for a rolling upgrade in which older apis still run: README "Upgrades").
   */
  FORWARD_RESPONSE_SEALING: z.enum(['group', 'forward']).default('group'),

  // --- authentication (services/api/src/auth; docs/auth.md)
  /** OAuth 1.0a consumers: JSON `[{ key, secret, permissions, accounts }]` or the path of a file holding it. */
  OAUTH_CONSUMERS: optionalString,
  /** Accepted distance (seconds) between oauth_timestamp and now; also the nonce lifetime. */
  OAUTH_TIMESTAMP_WINDOW_SECONDS: int(300, 1, 3_600),
  /** HS256 secret for Bearer tokens (at least 32 characters). */
  AUTH_JWT_SECRET: optionalString.refine((v) => v === undefined || v.length >= 32, 'must be at least 32 characters (for example: openssl rand -base64 32)'),
  /** JWKS endpoint for asymmetric Bearer tokens (RS*, PS*, ES*, EdDSA). */
  AUTH_JWKS_URL: url(),
  /** Public keys for Bearer tokens: PEM (one or more SPKI blocks), a JWKS JSON, or the path of a file holding either. */
  AUTH_JWT_PUBLIC_KEYS: optionalString,
  /** Allowed JWT algorithms (comma-separated); empty: HS256 for the secret and the usual asymmetric ones for keys. */
  AUTH_JWT_ALGORITHMS: list.refine((l) => l.every((a) => JWT_ALGORITHMS.includes(a)), `each must be one of ${JWT_ALGORITHMS_TEXT}`),
  AUTH_JWT_ISSUER: optionalString,
  /** Required audience (comma-separated: any of them). */
  AUTH_JWT_AUDIENCE: list,
  AUTH_JWT_CLOCK_SKEW_SECONDS: int(30, 0, 600),
  AUTH_ROLES_CLAIM: z.string().min(1).default('roles'),
  AUTH_ACCOUNTS_CLAIM: z.string().min(1).default('accounts'),
  AUTH_ADMIN_ROLE: z.string().min(1).default('admin'),
  AUTH_LPA_ROLE: z.string().min(1).default('lpa'),
  /** Cache lifetime of the JWKS and the minimum time between two fetches of it (also on unknown kids or errors). */
  AUTH_JWKS_CACHE_SECONDS: int(600, 30, 86_400),
  AUTH_JWKS_MIN_REFETCH_SECONDS: int(30, 1, 3_600),
  /** Development only: where a generated HS256 secret is kept when no credentials are configured. */
  AUTH_DEV_SECRET_FILE: optionalString,
  /** Behind a reverse proxy: take the scheme and host that OAuth signatures cover from X-Forwarded-Proto/-Host. */
  TRUST_PROXY: bool(false),
  /** Serve /metrics without credentials. */
  METRICS_PUBLIC: bool(false),

  // --- certificate store
  VAULT_ADDR: url(),
  VAULT_TOKEN: optionalString,
  VAULT_ROLE_ID: optionalString,
  VAULT_SECRET_ID: optionalString,
  VAULT_KV_MOUNT: z.string().regex(/^[A-Za-z0-9_-]+$/).default('secret'),
  VAULT_PATH_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/).default('mtls-relay'),
  VAULT_NAMESPACE: optionalString,
  VAULT_TIMEOUT_MS: int(5_000, 100, 120_000),
  VAULT_CA_FILE: optionalString,
  /** 32-byte base64 key for the embedded store and job payloads. Required in production. */
  MASTER_KEY: base64Key,
  /** Older master keys (comma-separated base64) still accepted for decryption during a rotation. */
  MASTER_KEYS_PREVIOUS: list,
  /** Development only: where a generated master key is kept when MASTER_KEY is unset. */
  MASTER_KEY_FILE: optionalString,

  // --- targets
  /** Hosts (`*.example.com` allowed), IP addresses and CIDRs that are allowed although not global. */
  TARGET_ALLOWLIST: list,
  /** DNS servers (`ip` or `ip:port`, comma-separated) for target names instead of the system resolver. */
  TARGET_DNS_SERVERS: list,
  ALLOW_HTTP_TARGETS: bool(false),
  /** Extra CA certificates (PEM file) trusted for target servers, on top of the system roots. */
  TARGET_CA_FILE: optionalString,
  CONNECT_TIMEOUT_MS: int(5_000, 100, 120_000),
  HEADERS_TIMEOUT_MS: int(15_000, 100, 300_000),
  BODY_TIMEOUT_MS: int(15_000, 100, 300_000),
  /** Whole-request deadline for one attempt; must be shorter than the sync wait and the job lock. */
  TARGET_TIMEOUT_MS: int(20_000, 100, 300_000),
  RESPONSE_LIMIT_BYTES: int(10 * 1024 * 1024, 1, 512 * 1024 * 1024),

  // --- worker
  /** Forwards one worker process sends at once (over all the batch jobs it holds). */
  WORKER_CONCURRENCY: int(64, 1, 1000),
  /** BullMQ lock duration; a job whose worker stops renewing it for this long is rerun (if safe). */
  JOB_LOCK_MS: int(30_000, 1_000, 600_000),
  FORWARD_ATTEMPTS: int(3, 1, 20),
  RETRY_BASE_DELAY_MS: int(200, 0, 60_000),
  /** How long finished jobs and their results are kept for polling. */
  RESULT_TTL_SECONDS: int(3_600, 60, 7 * 24 * 3_600),
  CERT_CACHE_TTL_SECONDS: int(300, 1, 86_400),
  MAX_CERT_AGENTS: int(1_000, 1, 100_000),

  // --- circuit breakers (one per target origin, per worker process)
  BREAKER_ERROR_PERCENT: int(50, 1, 100),
  BREAKER_VOLUME_THRESHOLD: int(5, 1, 10_000),
  BREAKER_RESET_MS: int(30_000, 100, 3_600_000),
  BREAKER_WINDOW_MS: int(10_000, 1_000, 3_600_000),
  MAX_BREAKERS: int(10_000, 1, 1_000_000),

  // --- operations: worker health/metrics server, certificate expiry check, Redis Sentinel / Cluster
  /** Port of the worker's own HTTP server (/healthz, /readyz, /metrics); 0 picks a free port. */
  METRICS_PORT: int(9464, 0, 65535),
  /** How often the repeatable certificate-expiry job runs. */
  CERT_EXPIRY_CHECK_SECONDS: int(3_600, 5, 7 * 24 * 3_600),
  /** Redis Sentinel: `host:port` of each sentinel (comma-separated); with REDIS_SENTINEL_NAME. */
  REDIS_SENTINELS: list,
  /** Redis Sentinel: the monitored master's name. */
  REDIS_SENTINEL_NAME: optionalString,
  /** Redis Sentinel: password of the sentinels themselves (the master's comes from REDIS_URL). */
  REDIS_SENTINEL_PASSWORD: optionalString,
  /** Redis Cluster: `host:port` of one or more seed nodes (comma-separated); QUEUE_PREFIX must be hash-tagged. */
  REDIS_CLUSTER_NODES: list,
  /** Queues (forward and mapping) one relay spreads its jobs over; with a Cluster, each shard gets its own hash slot. */
  QUEUE_SHARDS: int(1, 1, 64),
  /** Shards (0-based indexes, comma-separated) whose queues this worker consumes; every shard when unset. */
  WORKER_SHARDS: list,
});

type Env = z.output<typeof envSchema>;

export interface Config extends Omit<Env, 'MASTER_KEY' | 'MASTER_KEYS_PREVIOUS' | 'REDIS_URL'> {
  REDIS_URL: string;
  MASTER_KEY: Buffer | undefined;
  MASTER_KEYS_PREVIOUS: Buffer[];
  /** 'vault' when VAULT_ADDR is set, else 'embedded' (Redis). */
  storeKind: 'vault' | 'embedded';
}

/** Names of every variable the relay reads (docker-compose and README are checked against this). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

/**
 * Parses and validates the environment once. Throws ConfigError naming every bad variable.
 * Only the variables of the schema are read; everything else in `env` is ignored.
 */
export function loadConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const picked: Record<string, string | undefined> = {};
  for (const name of CONFIG_VARIABLES) picked[name] = env[name];
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  const problems: string[] = [];
  const previous: Buffer[] = [];
  for (const [i, k] of e.MASTER_KEYS_PREVIOUS.entries()) {
    const key = Buffer.from(k, 'base64');
    if (key.length === 32) previous.push(key);
    else problems.push(`MASTER_KEYS_PREVIOUS: entry ${i + 1} is not a 32-byte base64 key`);
  }
  if (e.VAULT_ADDR !== undefined) {
    const hasToken = e.VAULT_TOKEN !== undefined;
    const hasRole = e.VAULT_ROLE_ID !== undefined || e.VAULT_SECRET_ID !== undefined;
    if (!hasToken && !hasRole) problems.push('VAULT_ADDR is set: also set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID');
    if (hasRole && (e.VAULT_ROLE_ID === undefined || e.VAULT_SECRET_ID === undefined)) {
      problems.push('VAULT_ROLE_ID and VAULT_SECRET_ID must be set together');
    }
  }
  if (e.NODE_ENV === 'production' && e.MASTER_KEY === undefined) {
    problems.push('MASTER_KEY: required in production (32 bytes, base64; for example: openssl rand -base64 32)');
  }
  problems.push(...parseAllowlist(e.TARGET_ALLOWLIST).problems.map((p) => `TARGET_ALLOWLIST: ${p}`));
  problems.push(...redisTopologyProblems(e));
  for (const server of e.TARGET_DNS_SERVERS) {
    const m = /^\[(.+)\]:\d{1,5}$/.exec(server) ?? /^([^:]+):\d{1,5}$/.exec(server);
    if (isIP(server) === 0 && isIP(m?.[1] ?? '') === 0) problems.push(`TARGET_DNS_SERVERS: "${server}" is not an IP address with an optional port`);
  }
  if (e.REQUEST_HEADERS_TIMEOUT_MS > e.REQUEST_TIMEOUT_MS) problems.push('REQUEST_HEADERS_TIMEOUT_MS must not be longer than REQUEST_TIMEOUT_MS');
  if (e.TARGET_TIMEOUT_MS >= e.JOB_LOCK_MS) problems.push('TARGET_TIMEOUT_MS must be shorter than JOB_LOCK_MS');
  if (e.TARGET_TIMEOUT_MS >= e.SYNC_WAIT_MS) problems.push('TARGET_TIMEOUT_MS must be shorter than SYNC_WAIT_MS');
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);

  return Object.freeze({
    ...e,
    REDIS_URL: e.REDIS_URL ?? 'redis://127.0.0.1:6379',
    MASTER_KEYS_PREVIOUS: previous,
    storeKind: e.VAULT_ADDR === undefined ? 'embedded' : 'vault',
  });
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** Sentinel and Cluster settings: well-formed, not both, and a Cluster needs a hash-tagged prefix. */
function redisTopologyProblems(e: Env): string[] {
  const problems: string[] = [];
  for (const [name, nodes] of [['REDIS_SENTINELS', e.REDIS_SENTINELS], ['REDIS_CLUSTER_NODES', e.REDIS_CLUSTER_NODES]] as const) {
    for (const node of nodes) if (!HOST_PORT.test(node)) problems.push(`${name}: "${node}" is not host:port`);
  }
  if (e.REDIS_SENTINELS.length > 0 && e.REDIS_CLUSTER_NODES.length > 0) problems.push('REDIS_SENTINELS and REDIS_CLUSTER_NODES exclude each other');
  if (e.REDIS_SENTINELS.length > 0 && e.REDIS_SENTINEL_NAME === undefined) problems.push('REDIS_SENTINELS is set: also set REDIS_SENTINEL_NAME (the master name)');
  // BullMQ's scripts touch several keys of a queue at once; in a cluster they must share one hash slot.
  if (e.REDIS_CLUSTER_NODES.length > 0 && e.QUEUE_SHARDS === 1 && !/\{[^{}]+\}/.test(e.QUEUE_PREFIX)) {
    problems.push(`QUEUE_PREFIX: with REDIS_CLUSTER_NODES it must carry a hash tag, for example {${e.QUEUE_PREFIX.replace(/[{}]/g, '')}}`);
  }
  for (const s of e.WORKER_SHARDS) {
    if (!/^\d+$/.test(s) || Number(s) >= e.QUEUE_SHARDS) problems.push(`WORKER_SHARDS: "${s}" is not a shard index from 0 to ${e.QUEUE_SHARDS - 1} (QUEUE_SHARDS is ${e.QUEUE_SHARDS})`);
  }
  return problems;
}
