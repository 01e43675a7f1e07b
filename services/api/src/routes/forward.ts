import express from 'express';
import type { Request, Response, Router } from 'express';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { RelayError } from '@mtls-relay/shared/errors';
import type { ForwardRecords } from '@mtls-relay/shared/forward-records';
import { forwardableRequestHeaders, isSafeHeaderValue, pairs } from '@mtls-relay/shared/http';
import { FORWARD_METHODS } from '@mtls-relay/shared/jobs';
import type { ForwardMethod } from '@mtls-relay/shared/jobs';
import { parseTargetUrl } from '@mtls-relay/shared/url';
import type { TargetUrl } from '@mtls-relay/shared/url';
import type { ForwardDispatcher, ForwardRequest } from '../queueing/dispatch.ts';
import { requestFingerprint } from '../queueing/idempotency.ts';
import type { IdempotencyClaim, IdempotencyKeys } from '../queueing/idempotency.ts';
import { parsePrefer } from '../prefer.ts';
import type { Preferences } from '../prefer.ts';
import { accountOf, principalOf } from '../auth/access.ts';
import { assertSingleValueHeaders } from '../hygiene.ts';
import { sendProblem } from '../problem.ts';
import { jobLocation, sendOutcome } from '../respond.ts';

export interface ForwardRouteDeps {
  ring: KeyRing;
  dispatcher: ForwardDispatcher;
  records: ForwardRecords;
  idempotency: IdempotencyKeys;
  bodyLimitBytes: number;
  syncWaitMs: number;
  allowHttp: boolean;
  /** Target policy checked before anything is enqueued (SSRF guard); throws RelayError target_not_allowed. */
  checkTarget: (url: TargetUrl) => Promise<void> | void;
}

const METHODS: ReadonlySet<string> = new Set(FORWARD_METHODS);

function singleHeader(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  if (Array.isArray(value)) throw new RelayError('invalid_header', `${name} must be sent once`);
  if (value !== undefined && !isSafeHeaderValue(value)) throw new RelayError('invalid_header', `${name} contains CR, LF or NUL`);
  return value;
}

function parseBoolean(name: string, value: string | undefined): boolean {
  if (value === undefined || value.trim() === '') return false;
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new RelayError('invalid_header', `${name} must be "true" or "false"`);
}

/** How long to wait for the outcome before answering: 0 answers 202 at once. */
function waitMsOf(prefer: Preferences, syncWaitMs: number): number {
  if (prefer.respondAsync) return Math.min((prefer.waitSeconds ?? 0) * 1000, syncWaitMs);
  return Math.min(prefer.waitSeconds === undefined ? syncWaitMs : prefer.waitSeconds * 1000, syncWaitMs);
}

/** Step 1: validate the request and turn it into a ForwardRequest (nothing is written anywhere). */
async function parseForward(req: Request, res: Response, deps: ForwardRouteDeps, waitMs: number): Promise<ForwardRequest> {
  if (!METHODS.has(req.method)) {
    res.setHeader('Allow', FORWARD_METHODS.join(', '));
    throw new RelayError('method_not_allowed', `${req.method} is not relayed; use ${FORWARD_METHODS.join(', ')}`);
  }
  const accountId = accountOf(req, res);
  assertSingleValueHeaders(req.rawHeaders);
  const rawUrl = singleHeader(req, 'lp-forward-url');
  if (rawUrl === undefined || rawUrl.trim() === '') throw new RelayError('invalid_forward_url', 'LP-forward-url is required');
  const url = parseTargetUrl(rawUrl, { allowHttp: deps.allowHttp });
  await deps.checkTarget(url);
  const serviceName = singleHeader(req, 'lp-service-name')?.trim() ?? '';
  if (serviceName.length > 256) throw new RelayError('invalid_header', 'LP-service-name is longer than 256 characters');
  const requireCertificate = parseBoolean('LP-stop-if-certificate-not-found', singleHeader(req, 'lp-stop-if-certificate-not-found'));
  const override = singleHeader(req, 'lp-authorization-override');
  const idempotencyKey = singleHeader(req, 'idempotency-key');
  if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 255)) {
    throw new RelayError('invalid_header', 'Idempotency-Key must be 1 to 255 characters');
  }
  const headers = forwardableRequestHeaders(pairs(req.rawHeaders));
  if (override !== undefined) headers.push(['Authorization', override]);
  const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  // The query string goes sealed (it often carries API keys); origin and path stay readable for operators.
  const trimmed = rawUrl.trim();
  const hash = trimmed.indexOf('#');
  const noFragment = hash === -1 ? trimmed : trimmed.slice(0, hash);
  const q = noFragment.indexOf('?');
  return {
    accountId,
    serviceName,
    url: q === -1 ? noFragment : noFragment.slice(0, q),
    query: q === -1 ? '' : noFragment.slice(q),
    method: req.method as ForwardMethod,
    requireCertificate,
    ...(idempotencyKey === undefined
      ? {}
      : {
          idempotency: {
            key: idempotencyKey,
            fingerprint: requestFingerprint({ method: req.method, url: url.normalized, serviceName, body, principal: principalOf(res), override }),
          },
        }),
    requestId: String(res.locals['requestId'] ?? ''),
    headers,
    body,
    wantsReply: waitMs > 0,
  };
}

/** `GET|POST|PUT|PATCH|DELETE /mtls/account/:accountId`: validate, enqueue (group commit), wait, relay. */
export function forwardRouter(deps: ForwardRouteDeps): Router {
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: deps.bodyLimitBytes });

  router.all('/mtls/account/:accountId', rawBody, async (req: Request, res: Response) => {
    const prefer = parsePrefer(req.headers['prefer']);
    const waitMs = waitMsOf(prefer, deps.syncWaitMs);
    const request = await parseForward(req, res, deps, waitMs);

    // Step 2: enqueue (or find the earlier request with this Idempotency-Key).
    let admission;
    try {
      admission = await deps.dispatcher.submit(request);
      if (admission.kind === 'replay' && (await takeOverStaleClaim(deps, request, admission.earlier))) {
        admission = await deps.dispatcher.submit(request);
      }
    } catch (err) {
      if (err instanceof RelayError && err.code === 'enqueue_uncertain' && typeof err.extra?.['jobId'] === 'string') {
        const jobId = err.extra['jobId'];
        sendProblem(res, err, { jobId, location: jobLocation(jobId) });
        return;
      }
      throw err;
    }
    if (admission.kind === 'replay') {
      await replayEarlier(res, deps, admission.earlier, request);
      return;
    }

    // Step 3: wait for the outcome, and answer.
    if (waitMs === 0) {
      sendAccepted(res, admission.id);
      return;
    }
    const outcome = await admission.wait(waitMs);
    if (res.destroyed) return;
    if (outcome !== null) {
      sendOutcome(res, deps.ring, outcome);
      return;
    }
    if (prefer.respondAsync) {
      sendAccepted(res, admission.id);
      return;
    }
    sendProblem(res, new RelayError('wait_timeout', `the job did not finish within ${Math.round(waitMs / 1000)} s; poll ${jobLocation(admission.id)}`), {
      jobId: admission.id,
      location: jobLocation(admission.id),
    });
  });

  return router;
}

/**
 * A claim whose forward was withdrawn (never sent), or that names a forward that does not exist and was made longer
 * ago than any enqueue can take, was left by a request that answered 503 while Redis stalled: free the key so that
 * this request can claim it.
 */
async function takeOverStaleClaim(deps: ForwardRouteDeps, request: ForwardRequest, earlier: IdempotencyClaim): Promise<boolean> {
  if (request.idempotency === undefined) return false;
  const view = await viewOrUnavailable(deps, earlier.jobId);
  // Withdrawn while Redis stalled (recorded as never sent): the key is free for this request.
  const withdrawn = view?.outcome?.ok === false && view.outcome.error.code === 'queue_unavailable' && view.attempts === 0;
  if (!withdrawn && !deps.idempotency.isStale(earlier, view !== undefined)) return false;
  return deps.idempotency.release(request.accountId, request.idempotency.key, earlier.jobId);
}

async function viewOrUnavailable(deps: ForwardRouteDeps, forwardId: string): ReturnType<ForwardRecords['view']> {
  try {
    return await deps.records.view(forwardId);
  } catch (cause) {
    throw new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable', { cause, retryAfter: 1 });
  }
}

/** A request whose Idempotency-Key was used before: the first result, 409 while it runs, 422 if it differs. */
async function replayEarlier(res: Response, deps: ForwardRouteDeps, earlier: IdempotencyClaim, request: ForwardRequest): Promise<void> {
  if (earlier.fingerprint !== request.idempotency?.fingerprint) {
    throw new RelayError('idempotency_key_reused', 'this Idempotency-Key was first used with another method, URL, service, body, caller or LP-authorization-override');
  }
  const outcome = (await viewOrUnavailable(deps, earlier.jobId))?.outcome;
  if (outcome === undefined) {
    sendProblem(res, new RelayError('idempotency_in_flight', 'the first request with this Idempotency-Key has not finished yet', { retryAfter: 1 }), {
      jobId: earlier.jobId,
      location: jobLocation(earlier.jobId),
    });
    return;
  }
  res.setHeader('Idempotent-Replayed', 'true');
  sendOutcome(res, deps.ring, outcome);
}

function sendAccepted(res: Response, jobId: string): void {
  res.status(202);
  res.setHeader('Location', jobLocation(jobId));
  res.setHeader('LP-job-id', jobId);
  res.setHeader('Preference-Applied', 'respond-async');
  res.setHeader('Retry-After', '1');
  res.json({ jobId, state: 'queued' });
}
