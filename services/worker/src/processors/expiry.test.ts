import { describe, expect, it } from 'vitest';
import { expiryThreshold } from './expiry.ts';
import { withRequestId } from './forward.ts';

describe('expiryThreshold', () => {
  it('gives the smallest of 30, 14 and 7 days that the time left falls within', () => {
    expect(expiryThreshold(45)).toBeUndefined();
    expect(expiryThreshold(30)).toBe(30);
    expect(expiryThreshold(29.9)).toBe(30);
    expect(expiryThreshold(14)).toBe(14);
    expect(expiryThreshold(10)).toBe(14);
    expect(expiryThreshold(7)).toBe(7);
    expect(expiryThreshold(0.5)).toBe(7);
  });
});

describe('withRequestId', () => {
  it('when the caller sent an X-Request-Id of any case, then the target gets exactly one: the relay\'s', () => {
    expect(withRequestId([['x-request-ID', 'caller'], ['Accept', '*/*']], 'rid-1')).toEqual([['Accept', '*/*'], ['X-Request-Id', 'rid-1']]);
  });
  it('when there is no request id, then the headers are unchanged', () => {
    expect(withRequestId([['Accept', '*/*']], '')).toEqual([['Accept', '*/*']]);
  });
});
