import express from 'express';
import type { Request, Response, Router } from 'express';
import { RelayError } from '@mtls-relay/shared/errors';
import { isAdministrator, principalOf } from '../auth/access.ts';

/**
 * `GET /mtls/whoami`: what the caller's own credentials allow (the accounts they may act on, their permissions,
 * whether they are an administrator). It tells the caller only about itself, so it needs no account scope; the
 * console uses it to offer the caller's accounts and, to administrators, the queue dashboard.
 */
export function whoamiRouter(): Router {
  const router = express.Router();
  router.get('/mtls/whoami', (_req: Request, res: Response) => {
    const p = principalOf(res);
    if (p === undefined) throw new RelayError('unauthenticated', 'credentials are required (OAuth 1.0a or Bearer)');
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      id: p.id,
      kind: p.kind,
      accounts: p.accounts === '*' ? '*' : [...p.accounts].sort(),
      permissions: [...p.permissions].sort(),
      administrator: isAdministrator(p),
    });
  });
  return router;
}
