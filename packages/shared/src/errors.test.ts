import { describe, expect, it } from 'vitest';
import { decodeFailure, encodeFailure, ERROR_CATALOGUE, fromErrorPayload, isStoreFault, RelayError, relayErrorOf, StoreError } from './errors.ts';

describe('relayErrorOf: the one mapping of store failures', () => {
  it.each([
    ['not_found', undefined, 'not_found', 404],
    ['conflict', undefined, 'conflict', 409],
    ['invalid', 'invalid_certificate', 'invalid_certificate', 400],
    ['invalid', undefined, 'internal', 500],
    ['denied', undefined, 'store_denied', 502],
    ['unavailable', undefined, 'store_unavailable', 503],
  ] as const)('a %s store error (code %s) becomes %s (%i)', (kind, code, expected, status) => {
    const err = new StoreError(kind, `read accounts/a/x: ${kind}`, code === undefined ? {} : { code });
    const mapped = relayErrorOf(err);
    expect(mapped).toBeInstanceOf(RelayError);
    expect(mapped).toMatchObject({ code: expected, status, cause: err });
  });

  it('only an unavailable store carries Retry-After; a denied or unusable one says it is not retried and names the cause', () => {
    expect((relayErrorOf(new StoreError('unavailable', 'down')) as RelayError).retryAfter).toBe(1);
    const denied = relayErrorOf(new StoreError('denied', 'read accounts/a/x: permission denied', { status: 403 })) as RelayError;
    expect(denied.retryAfter).toBeUndefined();
    expect(denied.detail).toMatch(/permission denied.*not retried/);
    const invalid = relayErrorOf(new StoreError('invalid', 'stored document x cannot be opened with the configured MASTER_KEY')) as RelayError;
    expect(invalid.detail).toMatch(/cannot be opened.*not retried/);
    expect(isStoreFault(denied) && isStoreFault(invalid)).toBe(true);
    expect(isStoreFault(relayErrorOf(new StoreError('unavailable', 'down')) as RelayError)).toBe(false);
    expect(isStoreFault(new RelayError('internal'))).toBe(false);
  });

  it('anything that is not a store error is returned unchanged', () => {
    const other = new Error('x');
    expect(relayErrorOf(other)).toBe(other);
    const relay = new RelayError('not_found');
    expect(relayErrorOf(relay)).toBe(relay);
  });

  it('store_denied is in the catalogue as a non-retryable 502', () => {
    expect(ERROR_CATALOGUE.store_denied.status).toBe(502);
  });
});

describe('the failure wire format', () => {
  it('round-trips a relay error, Retry-After included', () => {
    const err = new RelayError('circuit_open', 'paused', { retryAfter: 7 });
    expect(decodeFailure(encodeFailure(err))).toEqual({ code: 'circuit_open', detail: 'paused', retryAfter: 7 });
    expect(fromErrorPayload(decodeFailure(encodeFailure(new RelayError('target_timeout'))))).toMatchObject({ code: 'target_timeout', status: 504 });
  });

  it("reads anything that is not one of ours (BullMQ's own failedReason, garbage, an unknown code) as internal", () => {
    for (const text of ['job stalled more than allowable limit', '', undefined, '{"code":"no_such_code"}', 'null', '{"detail":"x"}']) {
      expect(decodeFailure(text), String(text)).toEqual({ code: 'internal', detail: 'the job failed' });
    }
  });

  it('keeps only well-typed members', () => {
    expect(decodeFailure('{"code":"store_unavailable","detail":42,"retryAfter":"soon","extra":"x"}')).toEqual({ code: 'store_unavailable', detail: '' });
  });
});
