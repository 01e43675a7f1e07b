import { RelayError } from '@mtls-relay/shared/errors';
import type { ErrorCode } from '@mtls-relay/shared/errors';

/**
 * The one place that classifies outcomes of a forward attempt.
 *
 * - `before-send`: nothing reached the target (connect refused or timed out, DNS, store down): safe to retry
 *   for every method.
 * - `after-send`: the request may have reached the target (timeouts, resets, 429/502/503/504): retried only for
 *   idempotent methods or when the caller sent an Idempotency-Key.
 * - `never`: retrying cannot help (TLS and certificate errors, other 4xx, oversize, policy).
 */
export type RetryClass = 'before-send' | 'after-send' | 'never';

const BEFORE_SEND: ReadonlySet<ErrorCode> = new Set(['connect_timeout', 'target_unreachable', 'target_dns_error', 'store_unavailable']);
const AFTER_SEND: ReadonlySet<ErrorCode> = new Set(['target_timeout', 'target_connection_reset', 'target_protocol_error']);

export function retryClassOf(code: ErrorCode): RetryClass {
  if (BEFORE_SEND.has(code)) return 'before-send';
  if (AFTER_SEND.has(code)) return 'after-send';
  return 'never';
}

/** Target statuses worth another attempt (when the method allows it). */
export const RETRYABLE_STATUS: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/** Retry-After (seconds or HTTP date) in seconds, capped; undefined when absent or unparseable. */
export function parseRetryAfter(value: string | undefined, capSeconds: number, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  let seconds: number;
  if (/^\d+$/.test(v)) seconds = Number(v);
  // An HTTP date names its month; Date.parse alone would also read "-1" or "2026" as dates.
  else if (!/[a-z]{3}/i.test(v)) return undefined;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    seconds = Math.max(0, Math.ceil((at - now) / 1000));
  }
  return Math.min(seconds, capSeconds);
}

// Alerts a TLS server sends when it does not accept the client certificate we presented (or its absence).
const CLIENT_CERT_ALERTS = [
  'CERTIFICATE_REQUIRED',
  'BAD_CERTIFICATE',
  'UNKNOWN_CA',
  'CERTIFICATE_UNKNOWN',
  'CERTIFICATE_EXPIRED',
  'CERTIFICATE_REVOKED',
  'UNSUPPORTED_CERTIFICATE',
  'ACCESS_DENIED',
  'HANDSHAKE_FAILURE',
];

// OpenSSL verification failures of the target's server certificate.
const SERVER_CERT_CODES: ReadonlySet<string> = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
  'INVALID_CA',
]);

/** Maps an undici / node:net / node:tls error to a catalogue error, by error code only. */
export function classifyTransportError(err: unknown): RelayError {
  if (err instanceof RelayError) return err;
  const e = err as { code?: unknown; name?: unknown; cause?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const name = typeof e?.name === 'string' ? e.name : '';
  const wrap = (c: ErrorCode, detail?: string): RelayError => new RelayError(c, detail, { cause: err });

  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return wrap('response_too_large', 'the response is larger than the configured limit');
  if (code === 'ERR_RELAY_TARGET_NOT_ALLOWED') return wrap('target_not_allowed', 'the target address is not allowed');
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return wrap('connect_timeout');
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return wrap('target_timeout', 'the target did not send response headers in time');
  if (code === 'UND_ERR_BODY_TIMEOUT') return wrap('target_timeout', 'the target did not send the response body in time');
  if (name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return wrap('target_timeout');
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NODATA' || code === 'EAI_NONAME') return wrap('target_dns_error');
  if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL'].includes(code)) {
    return wrap('target_unreachable', `the target could not be reached (${code})`);
  }
  if (code === 'ETIMEDOUT') return wrap('connect_timeout');
  if (SERVER_CERT_CODES.has(code)) return wrap('target_certificate_invalid', `the target's certificate was not accepted (${code})`);
  if (code.startsWith('ERR_SSL_') && code.includes('ALERT')) {
    return CLIENT_CERT_ALERTS.some((a) => code.endsWith(a))
      ? wrap('client_certificate_rejected', `the target refused the TLS handshake (${code})`)
      : wrap('target_tls_error', `TLS alert from the target (${code})`);
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return wrap('target_tls_error', `TLS failed (${code})`);
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') {
    // A TLS alert can surface as the cause of a socket error.
    if (e?.cause !== undefined && e.cause !== err) {
      const inner = classifyTransportError(e.cause);
      if (inner.code !== 'internal' && inner.code !== 'target_connection_reset') return inner;
    }
    return wrap('target_connection_reset');
  }
  // undici's HTTPParserError has no code when the answer is not HTTP at all.
  if (code.startsWith('HPE_') || name === 'HTTPParserError' || code === 'UND_ERR_INFO' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
    return wrap('target_protocol_error');
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INVALID_ARG') return wrap('bad_request', 'the request could not be sent as given');
  return wrap('internal', 'unexpected failure while calling the target');
}
