import { describe, expect, it } from 'vitest';
import { RelayError } from '@mtls-relay/shared/errors';
import { afterFailure, backoffDelay, isRetrySafe } from './retry.ts';

const GET = { method: 'GET' as const, keyed: false };
const POST = { method: 'POST' as const, keyed: false };
const KEYED_POST = { method: 'POST' as const, keyed: true };

describe('afterFailure: the forward retry decision', () => {
  it('retries a failure before anything was sent, for every method, until the last attempt', () => {
    for (const entry of [GET, POST, KEYED_POST]) {
      for (const code of ['connect_timeout', 'target_unreachable', 'target_dns_error', 'store_unavailable'] as const) {
        expect(afterFailure(new RelayError(code), entry, false), `${entry.method} ${code}`).toBe('retry');
        expect(afterFailure(new RelayError(code), entry, true), `${entry.method} ${code} last`).toBe('final');
      }
    }
  });

  it('retries a failure after the request may have reached the target only when sending twice is safe', () => {
    for (const code of ['target_timeout', 'target_connection_reset', 'target_protocol_error'] as const) {
      expect(afterFailure(new RelayError(code), GET, false)).toBe('retry');
      expect(afterFailure(new RelayError(code), KEYED_POST, false)).toBe('retry');
      expect(afterFailure(new RelayError(code), POST, false)).toBe('final');
      expect(afterFailure(new RelayError(code), { method: 'PATCH', keyed: false }, false)).toBe('final');
    }
  });

  it('never retries what another attempt cannot fix', () => {
    for (const code of ['target_certificate_invalid', 'client_certificate_rejected', 'certificate_required', 'response_too_large', 'target_not_allowed', 'store_denied', 'circuit_open', 'internal'] as const) {
      expect(afterFailure(new RelayError(code), GET, false), code).toBe('final');
    }
  });

  it('treats GET, PUT and DELETE, and any method with an Idempotency-Key, as safe to send twice', () => {
    expect(['GET', 'PUT', 'DELETE'].map((method) => isRetrySafe({ method: method as 'GET', keyed: false }))).toEqual([true, true, true]);
    expect(['POST', 'PATCH'].map((method) => isRetrySafe({ method: method as 'POST', keyed: false }))).toEqual([false, false]);
    expect(isRetrySafe({ method: 'PATCH', keyed: true })).toBe(true);
  });
});

describe('backoffDelay', () => {
  const settings = { retryBaseDelayMs: 200, retryMaxDelayMs: 30_000 };

  it('draws from [0, base × 2^(n-1)), capped at the maximum', () => {
    expect(backoffDelay(1, undefined, settings, () => 0.999)).toBe(199);
    expect(backoffDelay(3, undefined, settings, () => 0.5)).toBe(400);
    expect(backoffDelay(20, undefined, settings, () => 0.999)).toBe(29_970);
    expect(backoffDelay(2, undefined, settings, () => 0)).toBe(0);
  });

  it("never waits less than the target's Retry-After", () => {
    expect(backoffDelay(1, 2, settings, () => 0.1)).toBe(2_000);
    expect(backoffDelay(8, 1, settings, () => 0.5)).toBe(12_800);
  });
});
