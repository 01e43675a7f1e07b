/**
 * Cloudflare's API envelope for the routes that mirror Cloudflare Access mTLS (`/accounts/...`):
 * `{ success, errors: [{ code, message }], messages, result, result_info? }`. Cloudflare clients read
 * `errors[].code` as an integer (≥ 1000), so each catalogue code maps to a stable integer here:
 *
 * | int   | catalogue code              | status | meaning                                         |
 * | ----- | --------------------------- | ------ | ----------------------------------------------- |
 * | 7000  | (no route)                  | 404    | no such route under /accounts                   |
 * | 7001  | method_not_allowed          | 405    | method not available for the route              |
 * | 10000 | unauthenticated             | 401    | credentials missing or invalid                  |
 * | 10001 | forbidden                   | 403    | credentials may not act on this account         |
 * | 12000 | bad_request, invalid_body   | 400    | malformed body or query (message names field)   |
 * | 12001 | invalid_account_id          | 400    | account id not valid                            |
 * | 12002 | invalid_certificate         | 400    | certificate is not a PEM X.509 chain            |
 * | 12003 | invalid_private_key         | 400    | key unparseable or not the leaf's key           |
 * | 12004 | certificate_not_current     | 400    | leaf expired or not yet valid                   |
 * | 12005 | invalid_hostname            | 400    | a hostname is not a DNS name                    |
 * | 12006 | not_found                   | 404    | no such certificate                             |
 * | 12007 | conflict                    | 409    | duplicate name, or certificate still mapped     |
 * | 12008 | body_too_large              | 413    | request body over the limit                     |
 * | 12009 | store_unavailable           | 503    | certificate store unavailable (Retry-After)     |
 * | 12010 | store_denied                | 502    | the store refused (the relay's Vault policy)    |
 * | 12400 | any other 4xx               |        |                                                 |
 * | 12500 | internal (any other 5xx)    | 500    | unexpected; logged                              |
 */
import type { NextFunction, Request, Response } from 'express';
import { ERROR_CATALOGUE, RelayError, relayErrorOf } from '@mtls-relay/shared/errors';
import type { ErrorCode } from '@mtls-relay/shared/errors';
import { errorSummary } from '@mtls-relay/shared/logging';
import type { Logger } from '@mtls-relay/shared/logging';

export const CF_NO_ROUTE = 7000;

const CF_CODES: Partial<Record<ErrorCode, number>> = {
  method_not_allowed: 7001,
  unauthenticated: 10000,
  forbidden: 10001,
  bad_request: 12000,
  invalid_body: 12000,
  invalid_account_id: 12001,
  invalid_certificate: 12002,
  invalid_private_key: 12003,
  certificate_not_current: 12004,
  invalid_hostname: 12005,
  not_found: 12006,
  conflict: 12007,
  body_too_large: 12008,
  store_unavailable: 12009,
  store_denied: 12010,
};

export function cloudflareCode(code: ErrorCode): number {
  return CF_CODES[code] ?? (ERROR_CATALOGUE[code].status >= 500 ? 12500 : 12400);
}

export interface ResultInfo {
  page: number;
  per_page: number;
  count: number;
  total_count: number;
  total_pages: number;
}

export function sendCfResult(res: Response, status: number, result: unknown, resultInfo?: ResultInfo): void {
  res.status(status);
  res.setHeader('Cache-Control', 'no-store');
  res.json({ success: true, errors: [], messages: [], result, ...(resultInfo === undefined ? {} : { result_info: resultInfo }) });
}

export function sendCfError(res: Response, status: number, code: number, message: string, retryAfter?: number): void {
  res.status(status);
  res.setHeader('Cache-Control', 'no-store');
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(retryAfter))));
  res.json({ success: false, errors: [{ code, message }], messages: [], result: null });
}

/** For everything under /accounts that no route answered: a JSON envelope, never HTML. */
export function cloudflareNotFound(req: Request, res: Response): void {
  sendCfError(res, 404, CF_NO_ROUTE, `no route for ${req.method} ${req.baseUrl}${req.path}`);
}

interface ParserError {
  type?: unknown;
  status?: unknown;
  expose?: unknown;
}

/** Error handler for the Cloudflare-shaped routes (mounted on /accounts, before the problem+json handler). */
export function cloudflareErrorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const mapped = relayErrorOf(err);
    if (mapped instanceof RelayError) {
      sendCfError(res, mapped.status, cloudflareCode(mapped.code), mapped.detail, mapped.retryAfter);
      return;
    }
    // Body parser failures: never echo the parser's message, it quotes the body (which may hold a key).
    const p = err as ParserError;
    if (p.type === 'entity.too.large') {
      sendCfError(res, 413, cloudflareCode('body_too_large'), ERROR_CATALOGUE.body_too_large.title);
      return;
    }
    if (typeof p.status === 'number' && p.status >= 400 && p.status < 500 && p.expose === true) {
      const message = p.type === 'entity.parse.failed' ? 'the request body is not valid JSON' : 'the request body could not be read';
      sendCfError(res, 400, cloudflareCode('invalid_body'), message);
      return;
    }
    logger.error({ reqId: res.locals['requestId'], method: req.method, path: req.baseUrl + req.path, ...errorSummary(err) }, 'unhandled error');
    sendCfError(res, 500, cloudflareCode('internal'), 'an unexpected error occurred; it has been logged');
  };
}

// --- list pagination (Cloudflare's page / per_page)

export const DEFAULT_PER_PAGE = 50;
export const MAX_PER_PAGE = 1000;

function positiveInt(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const text = typeof value === 'string' ? value.trim() : '';
  const n = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RelayError('invalid_body', `${name} must be an integer from 1 to ${max}`);
  }
  return n;
}

export function parsePagination(query: Record<string, unknown>): { page: number; perPage: number } {
  return {
    page: positiveInt('page', query['page'], 1, 1_000_000),
    perPage: positiveInt('per_page', query['per_page'], DEFAULT_PER_PAGE, MAX_PER_PAGE),
  };
}

/** One page of `items`; a page past the end is empty (Cloudflare clients page until they get one). */
export function paginate<T>(items: readonly T[], page: number, perPage: number): { items: T[]; info: ResultInfo } {
  const slice = items.slice((page - 1) * perPage, page * perPage);
  return {
    items: slice,
    info: {
      page,
      per_page: perPage,
      count: slice.length,
      total_count: items.length,
      total_pages: Math.ceil(items.length / perPage),
    },
  };
}
