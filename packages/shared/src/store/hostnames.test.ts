import { describe, expect, it } from 'vitest';
import { StoreError } from '../errors.ts';
import { normalizeHostnamePattern, normalizeHostnames } from './hostnames.ts';

describe('hostname patterns', () => {
  it.each([
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM.', 'api.example.com'],
    ['*.example.com', '*.example.com'],
    ['localhost', 'localhost'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['a-1.b2.example', 'a-1.b2.example'],
  ])('accepts the DNS name %s as %s', (raw, stored) => {
    expect(normalizeHostnamePattern(raw)).toBe(stored);
  });

  it.each([
    ['https://x.example/y', 'scheme and path'],
    ['x.example.com:443', 'port'],
    ['x.example.com/', 'path'],
    ['x.*.example.com', 'inner wildcard'],
    ['*', 'bare wildcard'],
    ['*example.com', 'wildcard without a dot'],
    ['-x.example.com', 'leading hyphen'],
    ['x-.example.com', 'trailing hyphen'],
    ['a..example.com', 'empty label'],
    ['a b.example.com', 'space'],
    ['under_score.example.com', 'underscore'],
    ['127.0.0.1', 'IPv4 literal'],
    ['[::1]', 'IPv6 literal'],
    ['', 'empty'],
    [`${'a'.repeat(64)}.example.com`, 'label over 63'],
    [Array.from({ length: 130 }, () => 'a').join('.') + '.com', 'name over 253'],
  ])('refuses %s (%s)', (raw) => {
    expect(normalizeHostnamePattern(raw)).toBeNull();
  });

  it('normalises a list, drops duplicates and names the first bad entry by its index', () => {
    expect(normalizeHostnames(['A.example.com', 'a.example.com.', '*.b.example'], 'associated_hostnames')).toEqual(['a.example.com', '*.b.example']);
    let caught: unknown;
    try {
      normalizeHostnames(['ok.example', 'https://x.example/y'], 'associated_hostnames');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreError);
    expect(caught).toMatchObject({ kind: 'invalid', code: 'invalid_hostname' });
    expect((caught as Error).message).toMatch(/^associated_hostnames\[1\]: "https:\/\/x.example\/y" is not a DNS name/);
  });
});
