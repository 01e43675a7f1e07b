import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Response } from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@mtls-relay/shared/config';
import { ConfigError } from '@mtls-relay/shared/errors';
import { createLogger } from '@mtls-relay/shared/logging';
import { canAccessAccount, requiredPermission } from './access.ts';
import { loadConsumers } from './consumers.ts';
import { buildAuthentication, loadPublicKeys } from './setup.ts';

const dir = mkdtempSync(join(tmpdir(), 'auth-setup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger({ name: 'test', level: 'silent' });
const redis = {} as Redis;
const SECRET = 'consumer-secret-that-must-not-leak';
const consumer = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  key: 'billing',
  secret: SECRET,
  permissions: ['MTLS_READ_INTERNAL'],
  accounts: ['123'],
  ...over,
});

describe('authentication configuration', () => {
  it('when production starts without any credentials, then it is a configuration error naming the variables', () => {
    const config = loadConfig({ NODE_ENV: 'production', MASTER_KEY: Buffer.alloc(32, 1).toString('base64') });
    expect(() => buildAuthentication(config, { redis, logger })).toThrow(ConfigError);
    expect(() => buildAuthentication(config, { redis, logger })).toThrow(/OAUTH_CONSUMERS, AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWT_PUBLIC_KEYS/);
  });

  it('when development starts without credentials, then a secret is generated in a 0600 file and reused', () => {
    const file = join(dir, 'dev.secret');
    const config = loadConfig({ NODE_ENV: 'development', AUTH_DEV_SECRET_FILE: file });
    const first = buildAuthentication(config, { redis, logger });
    expect(first.devSecretFile).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(first.summary).toMatchObject({ jwtAlgorithms: ['HS256'], oauthConsumers: 0 });
    expect(buildAuthentication(config, { redis, logger }).devSecretFile).toBe(file);
  });

  it('when credentials are configured, then no development secret is used, in any environment', () => {
    const config = loadConfig({ NODE_ENV: 'production', MASTER_KEY: Buffer.alloc(32, 1).toString('base64'), OAUTH_CONSUMERS: JSON.stringify([consumer()]) });
    const setup = buildAuthentication(config, { redis, logger });
    expect(setup.devSecretFile).toBeUndefined();
    expect(setup.summary).toMatchObject({ oauthConsumers: 1, jwtAlgorithms: [] });
  });

  it('when AUTH_JWT_SECRET is short or AUTH_JWT_ALGORITHMS names none, then loadConfig names the variable', () => {
    expect(() => loadConfig({ AUTH_JWT_SECRET: 'short' })).toThrow(/AUTH_JWT_SECRET: must be at least 32 characters/);
    expect(() => loadConfig({ AUTH_JWT_ALGORITHMS: 'HS256,none' })).toThrow(/AUTH_JWT_ALGORITHMS/);
    expect(loadConfig({ AUTH_JWT_ALGORITHMS: 'RS256, ES256' }).AUTH_JWT_ALGORITHMS).toEqual(['RS256', 'ES256']);
  });
});

describe('OAUTH_CONSUMERS', () => {
  it('parses JSON and files; "*" means every account', () => {
    const file = join(dir, 'consumers.json');
    writeFileSync(file, JSON.stringify([consumer({ accounts: ['*'], permissions: ['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'] })]));
    const fromFile = loadConsumers(file).get('billing');
    expect(fromFile?.accounts).toBe('*');
    expect([...(fromFile?.permissions ?? [])]).toEqual(['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL']);
    expect([...(loadConsumers(JSON.stringify([consumer()])).get('billing')?.accounts as Set<string>)]).toEqual(['123']);
  });

  it.each([
    ['not JSON', '[oops', /OAUTH_CONSUMERS: is not valid JSON/],
    ['an unknown permission', JSON.stringify([consumer({ permissions: ['ADMIN'] })]), /OAUTH_CONSUMERS: \[0\]\.permissions/],
    ['no permissions', JSON.stringify([consumer({ permissions: [] })]), /OAUTH_CONSUMERS: \[0\]\.permissions/],
    ['no accounts', JSON.stringify([consumer({ accounts: [] })]), /OAUTH_CONSUMERS: \[0\]\.accounts/],
    ['a short secret', JSON.stringify([consumer({ secret: 'short' })]), /OAUTH_CONSUMERS: \[0\]\.secret: must be at least 16/],
    ['an unknown field', JSON.stringify([consumer({ extra: SECRET })]), /OAUTH_CONSUMERS/],
    ['a duplicate key', JSON.stringify([consumer(), consumer()]), /OAUTH_CONSUMERS: \[1\]\.key: duplicate/],
    ['a missing file', join(dir, 'nope.json'), /OAUTH_CONSUMERS: neither a JSON array nor a readable file \(ENOENT\)/],
  ])('when it holds %s, then the start fails naming OAUTH_CONSUMERS and never echoing a secret', (_what, value, message) => {
    let error: unknown;
    try {
      loadConsumers(value);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain(SECRET);
  });
});

describe('AUTH_JWT_PUBLIC_KEYS', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;

  it('accepts PEM blocks, a JWKS JSON and a file holding either', () => {
    expect(loadPublicKeys(`${pem}\n${pem}`)).toHaveLength(2);
    const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1' }] });
    expect(loadPublicKeys(jwks)[0]?.kid).toBe('k1');
    const file = join(dir, 'keys.pem');
    writeFileSync(file, pem);
    expect(loadPublicKeys(file)[0]?.key.asymmetricKeyType).toBe('ec');
  });

  it('refuses private keys and text without a key, naming the variable', () => {
    expect(() => loadPublicKeys(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).toThrow(/AUTH_JWT_PUBLIC_KEYS: holds a private key/);
    expect(() => loadPublicKeys(JSON.stringify({ keys: [privateKey.export({ format: 'jwk' })] }))).toThrow(/private key/);
    expect(() => loadPublicKeys('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----')).toThrow(/AUTH_JWT_PUBLIC_KEYS: holds no usable public key/);
  });
});

describe('permissions and account access', () => {
  it('GET, HEAD and the mapping check are reads; every other method is a write', () => {
    expect(requiredPermission('GET', '/mtls/account/1')).toBe('MTLS_READ_INTERNAL');
    expect(requiredPermission('HEAD', '/x')).toBe('MTLS_READ_INTERNAL');
    expect(requiredPermission('POST', '/mtls/mapping')).toBe('MTLS_READ_INTERNAL');
    expect(requiredPermission('POST', '/MTLS/Mapping/')).toBe('MTLS_READ_INTERNAL');
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE', 'LIST']) expect(requiredPermission(m, '/mtls/account/1')).toBe('MTLS_WRITE_INTERNAL');
    expect(requiredPermission('PUT', '/mtls/mapping')).toBe('MTLS_WRITE_INTERNAL');
  });

  it('without a principal no account is accessible; with one, only its accounts', () => {
    const res = (principal?: unknown): Response => ({ locals: principal === undefined ? {} : { principal } }) as unknown as Response;
    expect(canAccessAccount(res(), '1')).toBe(false);
    const scoped = { kind: 'jwt', id: 'a', permissions: new Set(), accounts: new Set(['1']) };
    expect(canAccessAccount(res(scoped), '1')).toBe(true);
    expect(canAccessAccount(res(scoped), '2')).toBe(false);
    expect(canAccessAccount(res({ ...scoped, accounts: '*' }), '2')).toBe(true);
  });
});
