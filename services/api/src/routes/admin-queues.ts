import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { Queue } from 'bullmq';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { RelayError } from '@mtls-relay/shared/errors';
import { isAdministrator, principalOf } from '../auth/access.ts';

export const ADMIN_QUEUES_PATH = '/admin/queues';

/**
 * Administrators only: credentials that may act on every account and hold both permissions (a Bearer token
 * with the admin or LPA role and `accounts: ["*"]`, or an OAuth consumer configured likewise).
 */
function requireAdministrator(_req: Request, res: Response, next: NextFunction): void {
  next(isAdministrator(principalOf(res)) ? undefined : new RelayError('forbidden', 'the queue dashboard is for administrators (all accounts, read and write)'));
}

/**
 * The bull-board dashboard at /admin/queues, behind the authentication middleware and an administrator check.
 * Forward and mapping jobs are shown read-only: retrying or removing one by hand could send a caller's request
 * twice or lose it. The expiry check's queue may be acted on (run it now, retry it).
 */
export function adminQueuesRouter(queues: Queue[]): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(ADMIN_QUEUES_PATH);
  createBullBoard({
    // With QUEUE_SHARDS, every shard has a forward and a mapping queue: each is shown under its shard's prefix.
    queues: queues.map((q) => {
      const shared = queues.filter((other) => other.name === q.name).length > 1;
      return new BullMQAdapter(q, { readOnlyMode: q.name !== 'expiry', allowRetries: q.name === 'expiry', ...(shared ? { prefix: `${q.opts.prefix ?? ''}:` } : {}) });
    }),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'mtls-relay queues' } },
  });
  const router = express.Router();
  router.use(ADMIN_QUEUES_PATH, requireAdministrator, serverAdapter.getRouter() as express.Router);
  return router;
}
