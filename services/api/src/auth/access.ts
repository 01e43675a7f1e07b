import type { Request, Response } from 'express';
import { RelayError } from '@mtls-relay/shared/errors';
import { assertAccountId } from '@mtls-relay/shared/url';

export type Permission = 'MTLS_READ_INTERNAL' | 'MTLS_WRITE_INTERNAL';

/** Who is calling, as established by the authentication middleware (res.locals.principal). */
export interface Principal {
  readonly kind: 'oauth1' | 'jwt';
  /** Consumer key or JWT subject; safe to log. */
  readonly id: string;
  readonly permissions: ReadonlySet<Permission>;
  /** Accounts the caller may act on; '*' for all. */
  readonly accounts: '*' | ReadonlySet<string>;
}

export function principalOf(res: Response): Principal | undefined {
  return res.locals['principal'] as Principal | undefined;
}

/**
 * An administrator: may act on every account with both permissions (a Bearer token with the admin or LPA role and
 * `accounts: ["*"]`, or an OAuth consumer configured likewise). The queue dashboard is theirs.
 */
export function isAdministrator(p: Principal | undefined): boolean {
  return p !== undefined && p.accounts === '*' && p.permissions.has('MTLS_READ_INTERNAL') && p.permissions.has('MTLS_WRITE_INTERNAL');
}

/** May the caller act on `accountId`? Without an authenticated principal, never. */
export function canAccessAccount(res: Response, accountId: string): boolean {
  const p = principalOf(res);
  if (p === undefined) return false;
  return p.accounts === '*' || p.accounts.has(accountId);
}

/**
 * The permission a request needs: reads (GET, HEAD, OPTIONS, and the mapping check, which only asks
 * questions) need MTLS_READ_INTERNAL; everything else needs MTLS_WRITE_INTERNAL.
 */
export function requiredPermission(method: string, path: string): Permission {
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return 'MTLS_READ_INTERNAL';
  // Express matches routes case-insensitively and with an optional trailing slash.
  if (m === 'POST' && path.toLowerCase().replace(/\/+$/, '') === '/mtls/mapping') return 'MTLS_READ_INTERNAL';
  return 'MTLS_WRITE_INTERNAL';
}

/** Throws 403 forbidden when the caller may not act on `accountId`. Call before touching anything of the account. */
export function assertAccountAccess(res: Response, accountId: string): void {
  if (!canAccessAccount(res, accountId)) {
    throw new RelayError('forbidden', `these credentials may not act on account ${accountId}`);
  }
}

/**
 * The account a request names in its path parameter `param`, once checked: 400 invalid_account_id when it is
 * not an account id, 403 forbidden when the caller may not act on it.
 */
export function accountOf(req: Request, res: Response, param: 'accountId' | 'account_id' = 'accountId'): string {
  const accountId = assertAccountId(String(req.params[param]));
  assertAccountAccess(res, accountId);
  return accountId;
}
