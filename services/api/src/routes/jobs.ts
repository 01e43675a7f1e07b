import express from 'express';
import type { Request, Response, Router } from 'express';
import type { Job } from 'bullmq';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { RelayError } from '@mtls-relay/shared/errors';
import { errorPayloadOf, forwardResultSchema, openHeaders } from '@mtls-relay/shared/jobs';
import type { JobQueues } from '../clients/queue.ts';
import { groupHeaders } from '@mtls-relay/shared/http';
import { sendOutcome } from '../respond.ts';

export type PublicState = 'queued' | 'active' | 'completed' | 'failed';

function publicState(state: string): PublicState | undefined {
  if (state === 'active') return 'active';
  if (state === 'completed') return 'completed';
  if (state === 'failed') return 'failed';
  if (['waiting', 'delayed', 'prioritized', 'waiting-children', 'wait', 'paused'].includes(state)) return 'queued';
  return undefined;
}

const JOB_ID = /^[0-9a-f-]{36}$/;
/** One answer for "not there", "expired" and "not yours": a caller cannot tell another account's job ids from unknown ones. */
const NO_SUCH_JOB = 'no such job (unknown, or its result has expired)';

export interface JobsRouteDeps {
  ring: KeyRing;
  queues: JobQueues;
  /** May the caller see jobs of this account? (wired by the auth layer) */
  canSee?: (req: Request, res: Response, accountId: string) => boolean;
}

/** `GET /mtls/jobs/:jobId` (status) and `GET /mtls/jobs/:jobId/response` (the target's response, replayed). */
export function jobsRouter(deps: JobsRouteDeps): Router {
  const router = express.Router();

  const load = async (req: Request, res: Response): Promise<{ job: Job; state: PublicState }> => {
    const jobId = String(req.params['jobId']);
    if (!JOB_ID.test(jobId)) throw new RelayError('not_found', NO_SUCH_JOB);
    const job = await deps.queues.getJob('forward', jobId);
    if (job === undefined) throw new RelayError('not_found', NO_SUCH_JOB);
    const accountId = String((job.data as { accountId?: unknown }).accountId ?? '');
    if (deps.canSee !== undefined && !deps.canSee(req, res, accountId)) throw new RelayError('not_found', NO_SUCH_JOB);
    const state = publicState(await job.getState());
    if (state === undefined) throw new RelayError('not_found', NO_SUCH_JOB);
    return { job, state };
  };

  router.get('/mtls/jobs/:jobId', async (req: Request, res: Response) => {
    const { job, state } = await load(req, res);
    const parsed = state === 'completed' ? forwardResultSchema.safeParse(job.returnvalue) : undefined;
    const result = parsed?.success === true ? parsed.data : undefined;
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      id: job.id,
      state,
      attempts: job.attemptsMade,
      createdAt: new Date(job.timestamp).toISOString(),
      finishedAt: job.finishedOn === undefined ? null : new Date(job.finishedOn).toISOString(),
      mtls: result?.mtls ?? null,
      response:
        result === undefined
          ? null
          : { status: result.status, headers: headerObject(openHeaders(deps.ring, job.id as string, 'response', result.headers)) },
      error: state === 'failed' ? errorPayloadOf(job.failedReason) : null,
    });
  });

  router.get('/mtls/jobs/:jobId/response', async (req: Request, res: Response) => {
    const { job, state } = await load(req, res);
    const jobId = job.id as string;
    if (state === 'completed') {
      sendOutcome(res, deps.ring, { id: jobId, ok: true, result: job.returnvalue });
      return;
    }
    if (state === 'failed') {
      sendOutcome(res, deps.ring, { id: jobId, ok: false, error: errorPayloadOf(job.failedReason) });
      return;
    }
    res.status(202);
    res.setHeader('Retry-After', '1');
    res.setHeader('Location', `/mtls/jobs/${jobId}`);
    res.json({ jobId, state });
  });

  return router;
}

function headerObject(list: Array<[string, string]>): Record<string, string | string[]> {
  return Object.fromEntries([...groupHeaders(list)].map(([name, values]) => [name, values.length === 1 ? (values[0] as string) : values]));
}
