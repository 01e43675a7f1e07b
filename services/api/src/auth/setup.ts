/**
 * Builds the authentication middleware from the configuration, once, at start. Authentication is always
 * on: production refuses to start without credentials configured; development without any uses a
 * generated HS256 secret kept in a git-ignored file (see devJwtSecret and `npm run token`).
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { RequestHandler } from 'express';
import type { Config } from '@mtls-relay/shared/config';
import { ConfigError } from '@mtls-relay/shared/errors';
import { shardLayout } from '@mtls-relay/shared/shards';
import type { Logger } from '@mtls-relay/shared/logging';
import { loadConsumers } from './consumers.ts';
import { devJwtSecret } from './dev-secret.ts';
import { RemoteJwks } from './jwks.ts';
import { JwtVerifier } from './jwt.ts';
import type { PublicKeyEntry } from './jwt.ts';
import { createAuthenticator } from './middleware.ts';
import { NonceStore } from './nonces.ts';

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

function configError(line: string): ConfigError {
  return new ConfigError(`invalid configuration:\n  ${line}`);
}

/** AUTH_JWT_PUBLIC_KEYS: PEM blocks or a JWKS JSON, inline or in a file. */
export function loadPublicKeys(value: string | undefined): PublicKeyEntry[] {
  if (value === undefined) return [];
  const inline = value.includes('-----BEGIN') || value.trimStart().startsWith('{');
  let text: string;
  try {
    text = inline ? value : readFileSync(value.trim(), 'utf8');
  } catch (err) {
    throw configError(`AUTH_JWT_PUBLIC_KEYS: neither PEM, JWKS JSON nor a readable file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    if (text.trimStart().startsWith('{')) {
      const jwks = JSON.parse(text) as { keys?: unknown };
      if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('no keys');
      return jwks.keys.map((jwk: { kid?: unknown; kty?: unknown; d?: unknown }) => {
        if (jwk.kty === 'oct' || jwk.d !== undefined) throw new Error('only public keys belong here');
        return { kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, key: createPublicKey({ key: jwk as never, format: 'jwk' }) };
      });
    }
    const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
    if (blocks.length === 0) throw new Error('no PEM block');
    return blocks.map((pem) => {
      if (/PRIVATE KEY/.test(pem)) throw new Error('only public keys belong here');
      return { kid: undefined, key: createPublicKey(pem) };
    });
  } catch (err) {
    throw configError(`AUTH_JWT_PUBLIC_KEYS: ${(err as Error).message === 'only public keys belong here' ? 'holds a private key; only public keys belong here' : 'holds no usable public key (PEM SPKI blocks or a JWKS JSON)'}`);
  }
}

export interface AuthSetup {
  authenticate: RequestHandler;
  /** What is configured (for the start log line; no secrets). */
  summary: Record<string, unknown>;
  /** Set when a generated development secret is in use. */
  devSecretFile: string | undefined;
}

export function buildAuthentication(config: Readonly<Config>, deps: { redis: Redis; logger: Logger }): AuthSetup {
  const consumers = loadConsumers(config.OAUTH_CONSUMERS);
  const publicKeys = loadPublicKeys(config.AUTH_JWT_PUBLIC_KEYS);
  let secret = config.AUTH_JWT_SECRET;
  let devSecretFile: string | undefined;
  const nothing = consumers.size === 0 && secret === undefined && publicKeys.length === 0 && config.AUTH_JWKS_URL === undefined;
  if (nothing && config.NODE_ENV === 'production') {
    throw configError('no credentials configured: set OAUTH_CONSUMERS, AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWT_PUBLIC_KEYS (required in production)');
  }
  if (nothing) {
    const dev = devJwtSecret(config);
    secret = dev.secret;
    devSecretFile = dev.file;
  }
  const hasKeys = publicKeys.length > 0 || config.AUTH_JWKS_URL !== undefined;
  const algorithms = config.AUTH_JWT_ALGORITHMS.length > 0
    ? config.AUTH_JWT_ALGORITHMS
    : [...(secret === undefined ? [] : ['HS256']), ...(hasKeys ? ASYMMETRIC : [])];
  const jwks = config.AUTH_JWKS_URL === undefined
    ? undefined
    : new RemoteJwks(config.AUTH_JWKS_URL, {
        cacheMs: config.AUTH_JWKS_CACHE_SECONDS * 1000,
        minIntervalMs: config.AUTH_JWKS_MIN_REFETCH_SECONDS * 1000,
        timeoutMs: 5_000,
        logger: deps.logger,
      });
  const jwt = secret === undefined && !hasKeys
    ? undefined
    : new JwtVerifier({
        secret,
        publicKeys,
        jwks,
        algorithms,
        issuer: config.AUTH_JWT_ISSUER,
        audience: config.AUTH_JWT_AUDIENCE,
        clockSkewSeconds: config.AUTH_JWT_CLOCK_SKEW_SECONDS,
        rolesClaim: config.AUTH_ROLES_CLAIM,
        accountsClaim: config.AUTH_ACCOUNTS_CLAIM,
        adminRole: config.AUTH_ADMIN_ROLE,
        lpaRole: config.AUTH_LPA_ROLE,
      });
  const openPaths = new Set(['/healthz', '/readyz', '/openapi.json', ...(config.METRICS_PUBLIC ? ['/metrics'] : [])]);
  const authenticate = createAuthenticator({
    consumers,
    // With QUEUE_SHARDS > 1 the prefix has no hash tag: each nonce's key hashes to a slot of its own.
    nonces: new NonceStore(deps.redis, shardLayout(config.QUEUE_PREFIX, config.QUEUE_SHARDS).keyPrefix, config.OAUTH_TIMESTAMP_WINDOW_SECONDS),
    jwt,
    windowSeconds: config.OAUTH_TIMESTAMP_WINDOW_SECONDS,
    trustProxy: config.TRUST_PROXY,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    openPaths,
    logger: deps.logger,
  });
  return {
    authenticate,
    devSecretFile,
    summary: {
      oauthConsumers: consumers.size,
      jwtAlgorithms: jwt === undefined ? [] : algorithms,
      jwks: jwks !== undefined,
      publicKeys: publicKeys.length,
      trustProxy: config.TRUST_PROXY,
    },
  };
}
