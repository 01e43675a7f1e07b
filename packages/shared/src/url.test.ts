import { describe, expect, it } from 'vitest';
import { RelayError } from './errors.ts';
import { hostnameMatches, isValidAccountId, normalizeMappingUrl, parseTargetUrl } from './url.ts';

describe('parseTargetUrl', () => {
  it('keeps the path and query exactly and lower-cases scheme and host, dropping the default port', () => {
    const u = parseTargetUrl('HTTPS://Api.Example.COM:443/a/../B?x=1&y=%2F', { allowHttp: false });
    expect(u.origin).toBe('https://api.example.com');
    expect(u.pathAndQuery).toBe('/a/../B?x=1&y=%2F');
    expect(u.normalized).toBe('https://api.example.com/a/../B?x=1&y=%2F');
    expect(u.port).toBe(443);
  });

  it('treats an empty path as "/" and keeps a non-default port', () => {
    expect(parseTargetUrl('https://h.example:8443', { allowHttp: false }).normalized).toBe('https://h.example:8443/');
    expect(parseTargetUrl('https://h.example?q=1', { allowHttp: false }).pathAndQuery).toBe('/?q=1');
  });

  it('drops the fragment and unbrackets IPv6 hosts', () => {
    const u = parseTargetUrl('https://[::1]:9000/p#frag', { allowHttp: false });
    expect(u.hostname).toBe('::1');
    expect(u.pathAndQuery).toBe('/p');
  });

  it.each([
    ['', 'empty'],
    ['/relative/path', 'relative'],
    ['file:///etc/passwd', 'file scheme'],
    ['gopher://example.com/', 'gopher'],
    ['https://a@127.0.0.1/', 'user info'],
    ['https:///nohost', 'no host'],
    ['http://example.com/', 'http when not allowed'],
    ['https://exa mple.com/', 'space in host'],
    ['https://example.com/a b', 'space in path'],
    ['https://example.com:99999/', 'port out of range'],
  ])('refuses %j (%s) with invalid_forward_url', (raw) => {
    try {
      parseTargetUrl(raw, { allowHttp: false });
      expect.unreachable('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(RelayError);
      expect((err as RelayError).code).toBe('invalid_forward_url');
    }
  });

  it('accepts http only when allowed', () => {
    expect(parseTargetUrl('http://example.com/x', { allowHttp: true }).protocol).toBe('http:');
  });
});

describe('normalizeMappingUrl', () => {
  it('makes equivalent spellings of scheme, host and port equal but not paths', () => {
    expect(normalizeMappingUrl('https://TEST.com:443/p')).toBe(normalizeMappingUrl('https://test.com/p'));
    expect(normalizeMappingUrl('https://test.com/P')).not.toBe(normalizeMappingUrl('https://test.com/p'));
  });
});

describe('hostnameMatches', () => {
  it.each([
    ['api.example.com', 'API.example.com', true],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', 'example.com', false],
    ['example.com', 'example.com.', true],
    ['example.com', 'other.com', false],
  ])('%s vs %s → %s', (pattern, host, expected) => {
    expect(hostnameMatches(pattern, host)).toBe(expected);
  });
});

describe('isValidAccountId', () => {
  it.each(['123', 'le-site_1', 'a.b'])('accepts %j', (id) => expect(isValidAccountId(id)).toBe(true));
  it.each(['', 'a/b', '..', 'a..b', 'a:b', 'a\nb', ' a', 'x'.repeat(129), '.hidden'])('refuses %j', (id) =>
    expect(isValidAccountId(id)).toBe(false));
});
