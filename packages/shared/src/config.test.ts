import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { ConfigError } from './errors.ts';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(c.PORT).toBe(8080);
    expect(c.VAULT_KV_MOUNT).toBe('secret');
    expect(c.storeKind).toBe('embedded');
    expect(c.TARGET_ALLOWLIST).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('parses booleans explicitly: "false" is false', () => {
    expect(loadConfig({ ALLOW_HTTP_TARGETS: 'false' }).ALLOW_HTTP_TARGETS).toBe(false);
    expect(loadConfig({ ALLOW_HTTP_TARGETS: 'TRUE' }).ALLOW_HTTP_TARGETS).toBe(true);
    expect(() => loadConfig({ ALLOW_HTTP_TARGETS: 'maybe' })).toThrow(/ALLOW_HTTP_TARGETS/);
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ MASTER_KEY: 'c2hvcnQ=' }, 'MASTER_KEY'],
    [{ NODE_ENV: 'production' }, 'MASTER_KEY'],
    [{ VAULT_ADDR: 'http://127.0.0.1:8200' }, 'VAULT_TOKEN'],
    [{ VAULT_ADDR: 'http://127.0.0.1:8200', VAULT_ROLE_ID: 'r' }, 'VAULT_SECRET_ID'],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
    [{ TARGET_TIMEOUT_MS: '40000' }, 'TARGET_TIMEOUT_MS'],
  ])('refuses %j naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(variable);
  });

  it('selects Vault when VAULT_ADDR is set with credentials', () => {
    const c = loadConfig({ VAULT_ADDR: 'http://127.0.0.1:8200', VAULT_TOKEN: 't', MASTER_KEY: randomBytes(32).toString('base64') });
    expect(c.storeKind).toBe('vault');
    expect(c.MASTER_KEY).toHaveLength(32);
  });

  it.each([
    [{ TARGET_ALLOWLIST: '10.0.0.0/33' }, 'TARGET_ALLOWLIST'],
    [{ TARGET_ALLOWLIST: 'not a host' }, 'TARGET_ALLOWLIST'],
    [{ TARGET_DNS_SERVERS: 'dns.example' }, 'TARGET_DNS_SERVERS'],
    [{ REQUEST_HEADERS_TIMEOUT_MS: '9000', REQUEST_TIMEOUT_MS: '5000' }, 'REQUEST_HEADERS_TIMEOUT_MS'],
    [{ MAX_HEADER_COUNT: '5' }, 'MAX_HEADER_COUNT'],
  ])('refuses target and HTTP limit setting %j naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(variable);
  });

  it('accepts allowlist hosts, wildcards, addresses and CIDRs, and DNS servers with ports', () => {
    const c = loadConfig({ TARGET_ALLOWLIST: 'internal.example,*.corp.example,10.1.0.0/16,fd00::/8,127.0.0.1', TARGET_DNS_SERVERS: '127.0.0.1:5353,::1,[::1]:53,10.0.0.2' });
    expect(c.TARGET_ALLOWLIST).toHaveLength(5);
    expect(c.TARGET_DNS_SERVERS).toEqual(['127.0.0.1:5353', '::1', '[::1]:53', '10.0.0.2']);
  });

  it('splits TARGET_ALLOWLIST on commas', () => {
    expect(loadConfig({ TARGET_ALLOWLIST: '127.0.0.1, ::1 ,localhost' }).TARGET_ALLOWLIST).toEqual(['127.0.0.1', '::1', 'localhost']);
  });
});
