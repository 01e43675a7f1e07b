import type { NextFunction, Request, Response } from 'express';
import { ERROR_CATALOGUE, isStoreFault, RelayError, relayErrorOf } from '@mtls-relay/shared/errors';
import type { ErrorSpec } from '@mtls-relay/shared/errors';
import { errorSummary } from '@mtls-relay/shared/logging';
import type { Logger } from '@mtls-relay/shared/logging';
import { PROBLEM_CONTENT_TYPE, problemBody } from '@mtls-relay/shared/problem';

/** Renders a RelayError as RFC 9457 problem+json, with Proxy-Status (RFC 9209) when the failure was on the way to the target. */
export function sendProblem(res: Response, err: RelayError, extra: { jobId?: string; location?: string } = {}): void {
  const spec: ErrorSpec = ERROR_CATALOGUE[err.code];
  res.status(err.status);
  res.setHeader('Content-Type', PROBLEM_CONTENT_TYPE);
  res.setHeader('Cache-Control', 'no-store');
  if (spec.proxyStatus !== undefined) {
    res.setHeader('Proxy-Status', `mtls-relay; error=${spec.proxyStatus}; details=${JSON.stringify(err.detail.replace(/[^\x20-\x7e]/g, ''))}`);
  }
  if (err.retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfter))));
  if (extra.jobId !== undefined) res.setHeader('LP-job-id', extra.jobId);
  if (extra.location !== undefined) res.setHeader('Location', extra.location);
  res.end(JSON.stringify(problemBody(err, { ...(extra.jobId === undefined ? {} : { jobId: extra.jobId }), ...(err.extra ?? {}) })));
}

interface ParserError {
  type?: unknown;
  status?: unknown;
  expose?: unknown;
}

/** The last middleware: every error becomes problem+json with a code, never a stack trace. */
export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const mapped = relayErrorOf(err);
    if (mapped instanceof RelayError) {
      // A denied or unusable store needs an operator: say so in the log, with the store's own message.
      if (isStoreFault(mapped)) logger.error({ reqId: res.locals['requestId'], method: req.method, path: req.path, code: mapped.code, ...errorSummary(mapped.cause) }, 'certificate store fault');
      sendProblem(res, mapped);
      return;
    }
    const p = err as ParserError;
    if (p.type === 'entity.too.large') {
      sendProblem(res, new RelayError('body_too_large'));
      return;
    }
    if (typeof p.status === 'number' && p.status >= 400 && p.status < 500 && p.expose === true) {
      sendProblem(res, new RelayError('bad_request', 'the request body could not be read'));
      return;
    }
    logger.error({ reqId: res.locals['requestId'], method: req.method, path: req.path, ...errorSummary(err) }, 'unhandled error');
    sendProblem(res, new RelayError('internal', 'an unexpected error occurred; it has been logged'));
  };
}
