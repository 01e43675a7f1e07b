/**
 * The error catalogue. Every error the relay itself produces has a stable `code`; callers and our own code
 * branch on the code, never on message text. The HTTP layer renders these as RFC 9457 problem+json.
 */

export interface ErrorSpec {
  /** HTTP status the relay answers with. */
  readonly status: number;
  /** Short human title (the problem+json `title`). */
  readonly title: string;
  /** RFC 9209 Proxy-Status error type when the failure was on the way to the target. */
  readonly proxyStatus?: string;
}

export const ERROR_CATALOGUE = {
  bad_request: { status: 400, title: 'The request is malformed' },
  invalid_account_id: { status: 400, title: 'The account id is not valid' },
  invalid_forward_url: { status: 400, title: 'LP-forward-url is missing or not an absolute http(s) URL' },
  invalid_header: { status: 400, title: 'A request header has an invalid value' },
  invalid_body: { status: 400, title: 'The request body is not valid' },
  invalid_certificate: { status: 400, title: 'The certificate is not a valid PEM X.509 chain' },
  invalid_private_key: { status: 400, title: 'The private key is not valid or does not belong to the certificate' },
  certificate_not_current: { status: 400, title: 'The certificate has expired or is not valid yet' },
  invalid_hostname: { status: 400, title: 'A hostname is not a valid DNS name' },
  invalid_pkcs12: { status: 400, title: 'The PKCS#12 data is not a PKCS#12 file' },
  pkcs12_wrong_passphrase: { status: 400, title: 'The PKCS#12 passphrase is wrong' },
  pkcs12_no_key: { status: 400, title: 'The PKCS#12 file holds no private key, or no certificate for it' },
  pkcs12_unsupported_algorithm: { status: 400, title: 'The PKCS#12 file uses an algorithm the relay cannot decrypt' },
  certificate_not_client: { status: 400, title: 'A root certificate cannot be used as a client identity' },
  unauthenticated: { status: 401, title: 'Credentials are missing or invalid' },
  forbidden: { status: 403, title: 'The credentials do not allow this request' },
  target_not_allowed: { status: 403, title: 'The target address is not allowed', proxyStatus: 'destination_ip_prohibited' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  idempotency_in_flight: { status: 409, title: 'A request with this Idempotency-Key is still being processed' },
  idempotency_key_reused: { status: 422, title: 'This Idempotency-Key was used for a different request' },
  body_too_large: { status: 413, title: 'The request body is larger than the configured limit' },
  certificate_required: { status: 422, title: 'No valid client certificate is mapped for this target' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  internal: { status: 500, title: 'Internal error' },
  target_unreachable: { status: 502, title: 'The target could not be reached', proxyStatus: 'connection_refused' },
  target_dns_error: { status: 502, title: 'The target host name could not be resolved', proxyStatus: 'dns_error' },
  target_tls_error: { status: 502, title: 'TLS with the target failed', proxyStatus: 'tls_protocol_error' },
  target_certificate_invalid: { status: 502, title: "The target's server certificate is not trusted", proxyStatus: 'tls_certificate_error' },
  client_certificate_rejected: { status: 502, title: 'The target rejected the client certificate', proxyStatus: 'tls_alert_received' },
  target_connection_reset: { status: 502, title: 'The target closed the connection', proxyStatus: 'connection_terminated' },
  response_too_large: { status: 502, title: "The target's response is larger than the configured limit", proxyStatus: 'http_response_incomplete' },
  delivery_uncertain: { status: 502, title: 'The worker stopped while sending; the request may have reached the target and was not sent again', proxyStatus: 'connection_terminated' },
  invalid_job: { status: 500, title: 'The job payload is not valid' },
  store_denied: { status: 502, title: "The certificate store refused the relay's access; an operator must fix the relay's store permissions" },
  target_protocol_error: { status: 502, title: 'The target sent an invalid HTTP response', proxyStatus: 'http_protocol_error' },
  circuit_open: { status: 503, title: 'Calls to this target are paused after repeated failures', proxyStatus: 'destination_unavailable' },
  queue_unavailable: { status: 503, title: 'The job queue is unavailable' },
  enqueue_uncertain: { status: 503, title: 'The job queue did not confirm the enqueue in time; the request may still run: poll its Location' },
  auth_unavailable: { status: 503, title: 'Credentials cannot be checked right now' },
  store_unavailable: { status: 503, title: 'The certificate store is unavailable' },
  target_timeout: { status: 504, title: 'The target did not answer in time', proxyStatus: 'http_response_timeout' },
  connect_timeout: { status: 504, title: 'Connecting to the target timed out', proxyStatus: 'connection_timeout' },
  wait_timeout: { status: 504, title: 'The job did not finish within the wait; it keeps running' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** An error with a catalogue code. `detail` is safe to show to the caller; it never contains a secret. */
export class RelayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  /** Seconds the caller should wait before trying again (Retry-After), when known. */
  readonly retryAfter: number | undefined;
  /** Extra problem+json members (for example the index of an invalid item). */
  readonly extra: Record<string, unknown> | undefined;
  /** RFC 6901 JSON pointer to the request field at fault (e.g. `/private_key`), when one is. */
  readonly pointer: string | undefined;

  constructor(
    code: ErrorCode,
    detail?: string,
    options: { cause?: unknown; retryAfter?: number; extra?: Record<string, unknown>; pointer?: string } = {},
  ) {
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    super(detail ?? spec.title, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RelayError';
    this.code = code;
    this.status = spec.status;
    this.detail = detail ?? spec.title;
    this.retryAfter = options.retryAfter;
    this.extra = options.extra;
    this.pointer = options.pointer;
  }
}

/**
 * A store failure: `kind` tells absent, denied and unavailable apart (from status codes, never messages).
 * `code` is set when the failure is the caller's input (the message then says what is wrong with it).
 */
export class StoreError extends Error {
  readonly kind: 'not_found' | 'conflict' | 'denied' | 'unavailable' | 'invalid';
  readonly status: number | undefined;
  readonly code: ErrorCode | undefined;
  /** JSON pointer to the input field at fault, when the failure is the caller's input. */
  readonly pointer: string | undefined;

  constructor(kind: StoreError['kind'], message: string, options: { status?: number; cause?: unknown; code?: ErrorCode; pointer?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StoreError';
    this.kind = kind;
    this.status = options.status;
    this.code = options.code;
    this.pointer = options.pointer;
  }
}

/**
 * The one mapping of a store failure to what the caller sees, used by the api routes, the error handlers and
 * the worker alike:
 *
 * | StoreError kind | RelayError | retried by the worker |
 * | --- | --- | --- |
 * | `not_found` | `not_found` (404) | no |
 * | `conflict` | `conflict` (409) | no |
 * | `invalid` with a code (bad input) | that code (400) | no |
 * | `invalid` without one (a document the relay cannot open or read, an answer it cannot use) | `internal` (500), saying so | no |
 * | `denied` (Vault 401/403: the relay's token or policy) | `store_denied` (502) | no |
 * | `unavailable` (no answer, 429, 5xx, Redis down) | `store_unavailable` (503, Retry-After) | yes: an outage |
 *
 * Anything that is not a StoreError is returned unchanged.
 */
export function relayErrorOf(err: unknown): unknown {
  if (!(err instanceof StoreError)) return err;
  switch (err.kind) {
    case 'not_found':
      return new RelayError('not_found', err.message, { cause: err });
    case 'conflict':
      return new RelayError('conflict', err.message, { cause: err });
    case 'invalid':
      return err.code === undefined
        ? new RelayError('internal', `the certificate store returned something the relay cannot use (${err.message}); not retried: an operator must look at the store`, { cause: err })
        : new RelayError(err.code, err.message, { cause: err, ...(err.pointer === undefined ? {} : { pointer: err.pointer }) });
    case 'denied':
      return new RelayError('store_denied', `the certificate store refused the relay (${err.message}); not retried: an operator must fix the relay's store permissions`, { cause: err });
    case 'unavailable':
      return new RelayError('store_unavailable', 'the certificate store is unavailable; try again', { cause: err, retryAfter: 1 });
  }
}

/** Is this error (a RelayError from relayErrorOf) one an operator must act on: a denied or unusable store? */
export function isStoreFault(err: RelayError): boolean {
  return err.cause instanceof StoreError && (err.code === 'store_denied' || err.code === 'internal');
}

/** A bad setting; the message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The wire shape of a failure as it travels from worker to API (inside a job result or failedReason). */
export interface ErrorPayload {
  code: ErrorCode;
  detail: string;
  retryAfter?: number;
}

export function toErrorPayload(err: RelayError): ErrorPayload {
  return err.retryAfter === undefined
    ? { code: err.code, detail: err.detail }
    : { code: err.code, detail: err.detail, retryAfter: err.retryAfter };
}

export function fromErrorPayload(payload: ErrorPayload): RelayError {
  return new RelayError(payload.code, payload.detail, payload.retryAfter === undefined ? {} : { retryAfter: payload.retryAfter });
}

/**
 * The failure wire format, the one codec for it: a failure travels from worker to API as the JSON of its
 * ErrorPayload (inside a forward record, a reply, or a BullMQ failedReason). Anything that is not one of ours
 * (a BullMQ message such as "job stalled more than allowable limit") decodes to 'internal'.
 */
export function encodeFailure(err: RelayError): string {
  return JSON.stringify(toErrorPayload(err));
}

export function decodeFailure(text: string | undefined): ErrorPayload {
  return ownFailure(text) ?? { code: 'internal', detail: 'the job failed' };
}

/** The failure `text` encodes, or undefined when it is not one of ours (a BullMQ message, say). */
export function ownFailure(text: string | undefined): ErrorPayload | undefined {
  try {
    const parsed = JSON.parse(text ?? '') as Partial<ErrorPayload> | null;
    if (parsed !== null && isErrorCode(parsed.code)) return asErrorPayload({ ...parsed, code: parsed.code });
  } catch {
    // not one of ours
  }
  return undefined;
}

/** An ErrorPayload read back from JSON: the code must be ours, the rest is checked for type. */
export function asErrorPayload(value: Partial<ErrorPayload> & { code: ErrorCode }): ErrorPayload {
  const detail = typeof value.detail === 'string' ? value.detail : '';
  return typeof value.retryAfter === 'number' ? { code: value.code, detail, retryAfter: value.retryAfter } : { code: value.code, detail };
}
