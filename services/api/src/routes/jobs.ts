import express from 'express';
import type { Request, Response, Router } from 'express';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { RelayError } from '@mtls-relay/shared/errors';
import type { ForwardRecords, ForwardView } from '@mtls-relay/shared/forward-records';
import { forwardResultSchema } from '@mtls-relay/shared/jobs';
import { responseOf } from '@mtls-relay/shared/sealed-parts';
import { groupHeaders } from '@mtls-relay/shared/http';
import { jobLocation, sendOutcome } from '../respond.ts';

export interface JobsRouteDeps {
  ring: KeyRing;
  records: ForwardRecords;
  /** May the caller see jobs of this account? (wired by the auth layer) */
  canSee: (req: Request, res: Response, accountId: string) => boolean;
}

/** `GET /mtls/jobs/:jobId` (status) and `GET /mtls/jobs/:jobId/response` (the target's response, replayed). */
export function jobsRouter(deps: JobsRouteDeps): Router {
  const router = express.Router();

  const load = async (req: Request, res: Response): Promise<ForwardView> => {
    const jobId = String(req.params['jobId']);
    let view: ForwardView | undefined;
    try {
      view = await deps.records.view(jobId);
    } catch (cause) {
      throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable', { cause, retryAfter: 1 });
    }
    // One answer for "not there" and "not yours".
    if (view === undefined || !deps.canSee(req, res, view.accountId)) throw new RelayError('not_found', 'no such job (unknown, expired, or not visible to these credentials)');
    return view;
  };

  router.get('/mtls/jobs/:jobId', async (req: Request, res: Response) => {
    const view = await load(req, res);
    const outcome = view.outcome;
    const parsed = outcome?.ok === true ? forwardResultSchema.safeParse(outcome.result) : undefined;
    if (parsed?.success === false) throw new RelayError('internal', 'the job result is not readable');
    const result = parsed?.data;
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      id: view.id,
      state: view.state,
      attempts: view.attempts,
      createdAt: new Date(view.createdAt).toISOString(),
      finishedAt: view.finishedAt === undefined ? null : new Date(view.finishedAt).toISOString(),
      mtls: result?.mtls ?? null,
      response: result === undefined ? null : { status: result.status, headers: headerObject(responseOf(deps.ring, view.id, result, outcome?.ok === true ? outcome.parts : undefined).headers) },
      error: outcome?.ok === false ? outcome.error : null,
    });
  });

  router.get('/mtls/jobs/:jobId/response', async (req: Request, res: Response) => {
    const view = await load(req, res);
    if (view.outcome !== undefined) {
      sendOutcome(res, deps.ring, view.outcome);
      return;
    }
    res.status(202);
    res.setHeader('Retry-After', '1');
    res.setHeader('Location', jobLocation(view.id));
    res.json({ jobId: view.id, state: view.state });
  });

  return router;
}

function headerObject(list: Array<[string, string]>): Record<string, string | string[]> {
  return Object.fromEntries([...groupHeaders(list)].map(([name, values]) => [name, values.length === 1 ? (values[0] as string) : values]));
}
