/**
 * The authentication middleware: every route after it needs OAuth 1.0a or Bearer credentials (health,
 * readiness and the OpenAPI document stay open). It sets res.locals.principal, checks the method's
 * permission, and answers 401 (with WWW-Authenticate) or 403 before any route can enqueue anything.
 */
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RelayError } from '@mtls-relay/shared/errors';
import type { Logger } from '@mtls-relay/shared/logging';
import { requiredPermission } from './access.ts';
import type { Principal } from './access.ts';
import type { Consumer } from './consumers.ts';
import type { JwtVerifier } from './jwt.ts';
import type { NonceStore } from './nonces.ts';
import {
  baseStringUri,
  formParams,
  isProtocolParam,
  OAuthFormatError,
  parseOAuthHeader,
  parseOAuthParams,
  signatureBaseString,
  signatureMatches,
  withoutProtocolParams,
} from './oauth1.ts';
import type { Param } from './oauth1.ts';

export interface AuthenticatorOptions {
  consumers: ReadonlyMap<string, Consumer>;
  nonces: NonceStore;
  jwt: JwtVerifier | undefined;
  windowSeconds: number;
  /** Take the scheme and host of the signed URL from X-Forwarded-Proto / X-Forwarded-Host. */
  trustProxy: boolean;
  bodyLimitBytes: number;
  /** Paths served without credentials. */
  openPaths: ReadonlySet<string>;
  logger: Logger;
}

const REALM = 'realm="mtls-relay"';
// Signatures of unknown consumers are still computed (with this secret), so that timing tells nothing.
const DUMMY_SECRET = 'unknown-consumer-0000000000000000';

function isForm(req: Request): boolean {
  const type = req.headers['content-type'];
  return typeof type === 'string' && /^application\/x-www-form-urlencoded\s*(;|$)/i.test(type.trim());
}

function firstForwarded(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  const first = v?.split(',')[0]?.trim();
  return first === undefined || first === '' ? undefined : first;
}

export function createAuthenticator(opts: AuthenticatorOptions): RequestHandler {
  // The same reader as the forward route's, so that the route finds the body already read, byte for byte.
  const readForm = express.raw({ type: () => true, limit: opts.bodyLimitBytes });
  const readBody = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => {
      readForm(req, res, (err?: unknown) => (err === undefined || err === null ? resolve() : reject(err)));
    });

  const challenges = (bearerError: boolean): string[] => {
    const list: string[] = [];
    if (opts.jwt !== undefined) list.push(bearerError ? `Bearer ${REALM}, error="invalid_token"` : `Bearer ${REALM}`);
    if (opts.consumers.size > 0) list.push(`OAuth ${REALM}`);
    return list;
  };

  /**
   * OAuth 1.0a from the Authorization header (§3.5.1), or, without one, from the query string (§3.5.3) or an
   * urlencoded body (§3.5.2). Parameters sent those two ways are taken out of the request once checked
   * (req.url and req.body), so that nothing after authentication sees or relays them.
   */
  const oauth1 = async (req: Request, res: Response, header: string | undefined): Promise<Principal> => {
    if (opts.consumers.size === 0) throw new RelayError('unauthenticated', 'OAuth 1.0a is not configured on this relay');
    // The request target as sent (absolute-form reduced to its path and query).
    const target = req.originalUrl;
    const url = target.startsWith('/') ? target : URL.canParse(target) ? `${new URL(target).pathname}${new URL(target).search}` : target;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const queryParams: Param[] = q < 0 ? [] : formParams(url.slice(q + 1));
    let bodyParams: Param[] = [];
    if (isForm(req)) {
      await readBody(req, res);
      if (Buffer.isBuffer(req.body)) bodyParams = formParams(req.body.toString('utf8'));
    }
    const params: Param[] = [...queryParams, ...bodyParams];
    let parsed;
    let carrier: 'header' | 'query' | 'body' = 'header';
    try {
      if (header !== undefined) {
        parsed = parseOAuthHeader(header);
        params.push(...parsed.params);
      } else {
        const inQuery = queryParams.filter(([name]) => isProtocolParam(name));
        const inBody = bodyParams.filter(([name]) => isProtocolParam(name));
        if (inQuery.length > 0 && inBody.length > 0) throw new OAuthFormatError('the OAuth parameters must be sent in one place: the query string or the body');
        carrier = inQuery.length > 0 ? 'query' : 'body';
        parsed = parseOAuthParams(carrier === 'query' ? inQuery : inBody);
        // They are in `params` already; the signature itself never enters the base string (§3.4.1.3.1).
        const at = params.findIndex(([name]) => name === 'oauth_signature');
        params.splice(at, 1);
      }
    } catch (err) {
      if (err instanceof OAuthFormatError) throw new RelayError('unauthenticated', err.message);
      throw err;
    }
    const forwardedProto = opts.trustProxy ? firstForwarded(req.headers['x-forwarded-proto']) : undefined;
    const scheme = forwardedProto ?? ((req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http');
    const host = (opts.trustProxy ? firstForwarded(req.headers['x-forwarded-host']) : undefined) ?? req.headers.host ?? '';
    let base: string;
    try {
      base = signatureBaseString(req.method, baseStringUri(scheme, host, path), params);
    } catch (err) {
      if (err instanceof OAuthFormatError) throw new RelayError('unauthenticated', err.message);
      throw err;
    }
    const consumer = opts.consumers.get(parsed.consumerKey);
    const matches = signatureMatches(parsed.signatureMethod, base, consumer?.secret ?? DUMMY_SECRET, parsed.signature);
    if (consumer === undefined || !matches) {
      throw new RelayError('unauthenticated', 'the OAuth signature is invalid or the consumer is unknown');
    }
    const now = Math.floor(Date.now() / 1000);
    if (Math.abs(now - parsed.timestamp) > opts.windowSeconds) {
      throw new RelayError('unauthenticated', `oauth_timestamp is more than ${opts.windowSeconds} s away from the relay's clock`);
    }
    if (!(await opts.nonces.claim(consumer.key, parsed.timestamp, parsed.nonce, now))) {
      throw new RelayError('unauthenticated', 'oauth_nonce was already used');
    }
    if (carrier === 'query') {
      const at = req.url.indexOf('?');
      const rest = withoutProtocolParams(req.url.slice(at + 1));
      req.url = rest === '' ? req.url.slice(0, at) : `${req.url.slice(0, at)}?${rest}`;
    } else if (carrier === 'body' && Buffer.isBuffer(req.body)) {
      req.body = Buffer.from(withoutProtocolParams(req.body.toString('latin1')), 'latin1');
    }
    return { kind: 'oauth1', id: consumer.key, permissions: consumer.permissions, accounts: consumer.accounts };
  };

  const bearer = async (token: string): Promise<Principal> => {
    if (opts.jwt === undefined) throw new RelayError('unauthenticated', 'Bearer tokens are not accepted by this relay');
    return opts.jwt.verify(token.trim());
  };

  const hasOAuthParams = async (req: Request, res: Response): Promise<boolean> => {
    const q = req.originalUrl.indexOf('?');
    if (q >= 0 && formParams(req.originalUrl.slice(q + 1)).some(([name]) => isProtocolParam(name))) return true;
    if (!isForm(req)) return false;
    await readBody(req, res);
    return Buffer.isBuffer(req.body) && formParams(req.body.toString('utf8')).some(([name]) => isProtocolParam(name));
  };

  const authenticate = async (req: Request, res: Response): Promise<Principal> => {
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === '') {
      if (opts.consumers.size > 0 && (await hasOAuthParams(req, res))) return oauth1(req, res, undefined);
      throw new RelayError('unauthenticated', 'credentials are required (OAuth 1.0a or Bearer)');
    }
    if (/^OAuth\s/i.test(header)) return oauth1(req, res, header);
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (token !== undefined) return bearer(token);
    throw new RelayError('unauthenticated', 'the Authorization scheme must be OAuth or Bearer');
  };

  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (opts.openPaths.has(req.path)) {
      next();
      return;
    }
    const scheme = /^\s*(OAuth|Bearer)\s/i.exec(req.headers.authorization ?? '')?.[1]?.toLowerCase() ?? 'none';
    try {
      const principal = await authenticate(req, res);
      res.locals['principal'] = principal;
      const needed = requiredPermission(req.method, req.path);
      if (!principal.permissions.has(needed)) throw new RelayError('forbidden', `${req.method} needs the ${needed} permission`);
      opts.logger.debug({ reqId: res.locals['requestId'], scheme: scheme === 'none' ? principal.kind : scheme, principal: principal.id }, 'authenticated');
      next();
    } catch (err) {
      if (err instanceof RelayError && (err.code === 'unauthenticated' || err.code === 'forbidden')) {
        if (err.code === 'unauthenticated') res.setHeader('WWW-Authenticate', challenges(scheme === 'bearer'));
        const principal = (res.locals['principal'] as Principal | undefined)?.id;
        opts.logger.info(
          { reqId: res.locals['requestId'], method: req.method, path: req.path, scheme, status: err.status, reason: err.detail, ...(principal === undefined ? {} : { principal }) },
          'request refused by authentication',
        );
      }
      next(err);
    }
  };
}
