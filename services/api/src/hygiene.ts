import type { RequestHandler } from 'express';
import { RelayError } from '@mtls-relay/shared/errors';
import { isSafeHeaderValue } from '@mtls-relay/shared/http';

/**
 * Request shapes Node's parser lets through but a relay must not: too many header lines (Node would drop
 * the extra ones silently), a Transfer-Encoding that is not chunked or arrives on HTTP/1.0 (RFC 9112 §6.1:
 * the framing is ambiguous, a smuggling vector), a missing Host on HTTP/1.1, and CR, LF or NUL in any
 * LP-* header. Each is refused with problem+json and the connection is closed, so that an ambiguous body
 * is never read as the next request.
 */
export function requestHygiene(options: { maxHeaderCount: number }): RequestHandler {
  return (req, res, next) => {
    const refuse = (err: RelayError): void => {
      res.setHeader('Connection', 'close');
      next(err);
    };
    if (req.rawHeaders.length / 2 > options.maxHeaderCount) {
      refuse(new RelayError('headers_too_large', `more than ${options.maxHeaderCount} header lines`));
      return;
    }
    const te = req.headers['transfer-encoding'];
    if (te !== undefined) {
      const codings = te.split(',').map((c) => c.trim().toLowerCase());
      if (req.httpVersion === '1.0' || codings[codings.length - 1] !== 'chunked' || codings.filter((c) => c === 'chunked').length > 1) {
        refuse(new RelayError('bad_request', 'Transfer-Encoding must end with a single "chunked" on HTTP/1.1'));
        return;
      }
    }
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.headers.host === undefined) {
      refuse(new RelayError('bad_request', 'the Host header is required'));
      return;
    }
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = (req.rawHeaders[i] as string).toLowerCase();
      if (name.startsWith('lp-') && !isSafeHeaderValue(req.rawHeaders[i + 1] as string)) {
        refuse(new RelayError('invalid_header', `${name} contains CR, LF or NUL`));
        return;
      }
    }
    next();
  };
}

/** Forward headers that carry one value: a second line would be merged by Node into "a, b" and misread. */
const SINGLE_VALUE_HEADERS: ReadonlySet<string> = new Set([
  'lp-forward-url',
  'lp-service-name',
  'lp-authorization-override',
  'lp-stop-if-certificate-not-found',
  'idempotency-key',
  'prefer',
]);

/**
 * Throws 400 invalid_header when a single-value forward header comes more than once. Node joins repeated
 * custom headers with ", " in `req.headers` (two overrides would reach the target as `Bearer A, Bearer B`), so
 * the repeat is only visible in `req.rawHeaders`.
 */
export function assertSingleValueHeaders(rawHeaders: readonly string[]): void {
  const seen = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (!SINGLE_VALUE_HEADERS.has(name)) continue;
    if (seen.has(name)) throw new RelayError('invalid_header', `${name} must be sent once`);
    seen.add(name);
  }
}
