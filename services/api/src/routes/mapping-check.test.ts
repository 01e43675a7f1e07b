import { describe, expect, it } from 'vitest';
import { RelayError } from '@mtls-relay/shared/errors';
import { mappingKey, MAX_TUPLES, parseTuples } from './mapping-check.ts';

const ok = { accountId: 'test1', serviceName: 'test1', url: 'https://test.com' };

function failure(body: unknown): RelayError {
  try {
    parseTuples(body);
  } catch (err) {
    if (err instanceof RelayError) return err;
    throw err;
  }
  throw new Error('expected parseTuples to throw');
}

describe('mapping check input', () => {
  it('builds the v1 key exactly as the seed shows it, misspelling included', () => {
    expect(mappingKey(ok)).toBe("CertificateMappingParamters{serviceName='test1', accountId='test1', url='https://test.com'}");
  });

  it('accepts up to the limit and keeps the tuples as sent', () => {
    expect(parseTuples([ok, { ...ok, serviceName: '' }])).toEqual([ok, { ...ok, serviceName: '' }]);
    expect(parseTuples(Array.from({ length: MAX_TUPLES }, () => ok))).toHaveLength(MAX_TUPLES);
  });

  it('refuses one tuple over the limit with a message giving the limit and the count', () => {
    const err = failure(Array.from({ length: MAX_TUPLES + 1 }, () => ok));
    expect(err.status).toBe(400);
    expect(err.detail).toBe('at most 1000 tuples per request; this one has 1001');
  });

  it.each([
    [{ ...ok, accountId: 5 }, 'accountId'],
    [{ ...ok, accountId: 'a/b' }, 'accountId'],
    [{ accountId: 'a', url: 'https://x.example' }, 'serviceName'],
    [{ ...ok, url: 'not a url' }, 'url'],
    [{ ...ok, url: 'ftp://x.example/' }, 'url'],
    ['text', 'object'],
    [null, 'object'],
  ])('names the index of an invalid tuple (%o → %s)', (bad, field) => {
    const err = failure([ok, ok, bad]);
    expect(err.code).toBe('invalid_body');
    expect(err.extra).toEqual({ index: 2 });
    expect(err.detail).toMatch(new RegExp(`^tuple 2: .*${field}`));
  });

  it('refuses a body that is not an array', () => {
    expect(failure({ tuples: [ok] }).detail).toMatch(/JSON array/);
  });
});
