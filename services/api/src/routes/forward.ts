import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Request, Response, Router } from 'express';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { RelayError } from '@mtls-relay/shared/errors';
import { forwardableRequestHeaders, isSafeHeaderValue, pairs } from '@mtls-relay/shared/http';
import { FORWARD_METHODS, sealBody, sealHeaders } from '@mtls-relay/shared/jobs';
import type { ForwardMethod } from '@mtls-relay/shared/jobs';
import { assertAccountId, parseTargetUrl } from '@mtls-relay/shared/url';
import type { TargetUrl } from '@mtls-relay/shared/url';
import { IDEMPOTENCY_TTL_SECONDS, requestFingerprint } from '../clients/idempotency.ts';
import type { IdempotencyClaim, IdempotencyKeys } from '../clients/idempotency.ts';
import type { JobQueues } from '../clients/queue.ts';
import type { ResultWaiter } from '../clients/waiter.ts';
import { assertSingleValueHeaders } from '../hygiene.ts';
import { parsePrefer } from '../prefer.ts';
import { assertAccountAccess, principalOf } from '../auth/access.ts';
import { sendProblem } from '../problem.ts';
import { jobLocation, sendOutcome } from '../respond.ts';

export interface ForwardRouteDeps {
  ring: KeyRing;
  queues: JobQueues;
  waiter: ResultWaiter;
  idempotency: IdempotencyKeys;
  bodyLimitBytes: number;
  syncWaitMs: number;
  allowHttp: boolean;
  /** Target policy checked before anything is enqueued (SSRF guard); throws RelayError target_not_allowed. */
  checkTarget?: (url: TargetUrl) => Promise<void> | void;
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

/** `GET|POST|PUT|PATCH|DELETE /mtls/account/:accountId`: validate, enqueue a forward job, wait, relay. */
export function forwardRouter(deps: ForwardRouteDeps): Router {
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: deps.bodyLimitBytes });

  router.all('/mtls/account/:accountId', rawBody, async (req: Request, res: Response) => {
    if (!METHODS.has(req.method)) {
      res.setHeader('Allow', FORWARD_METHODS.join(', '));
      throw new RelayError('method_not_allowed', `${req.method} is not relayed; use ${FORWARD_METHODS.join(', ')}`);
    }
    const accountId = assertAccountId(String(req.params['accountId']));
    assertAccountAccess(res, accountId);
    assertSingleValueHeaders(req.rawHeaders);
    const rawUrl = singleHeader(req, 'lp-forward-url');
    if (rawUrl === undefined || rawUrl.trim() === '') throw new RelayError('invalid_forward_url', 'LP-forward-url is required');
    const url = parseTargetUrl(rawUrl, { allowHttp: deps.allowHttp });
    await deps.checkTarget?.(url);
    const serviceName = singleHeader(req, 'lp-service-name')?.trim() ?? '';
    if (serviceName.length > 256) throw new RelayError('invalid_header', 'LP-service-name is longer than 256 characters');
    const requireCertificate = parseBoolean('LP-stop-if-certificate-not-found', singleHeader(req, 'lp-stop-if-certificate-not-found'));
    const override = singleHeader(req, 'lp-authorization-override');
    const idempotencyKey = singleHeader(req, 'idempotency-key');
    if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 255)) {
      throw new RelayError('invalid_header', 'Idempotency-Key must be 1 to 255 characters');
    }
    const prefer = parsePrefer(req.headers['prefer']);

    const headers = forwardableRequestHeaders(pairs(req.rawHeaders));
    if (override !== undefined) headers.push(['Authorization', override]);
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);

    const jobId = randomUUID();
    const requestId = String(res.locals['requestId'] ?? jobId);
    if (idempotencyKey !== undefined) {
      const fingerprint = requestFingerprint({ method: req.method, url: url.normalized, serviceName, body, principal: principalOf(res), override });
      const earlier = await deps.idempotency.claim(accountId, idempotencyKey, { jobId, fingerprint, claimedAt: Date.now() });
      if (earlier !== null) {
        await replayEarlier(res, deps, earlier, fingerprint);
        return;
      }
    }
    const handle = deps.waiter.register(jobId);
    try {
      await deps.queues.enqueueForward(jobId, {
        v: 1,
        accountId,
        serviceName,
        url: rawUrl.trim(),
        method: req.method as ForwardMethod,
        requireCertificate,
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        requestId,
        replyTo: deps.waiter.channel,
        headers: sealHeaders(deps.ring, jobId, 'request', headers),
        body: sealBody(deps.ring, jobId, 'request', body),
        enqueuedAt: Date.now(),
      }, idempotencyKey === undefined ? undefined : IDEMPOTENCY_TTL_SECONDS);
    } catch (err) {
      handle.cancel();
      if (idempotencyKey !== undefined) await deps.idempotency.release(accountId, idempotencyKey, jobId);
      throw err;
    }

    const waitMs = prefer.respondAsync
      ? Math.min((prefer.waitSeconds ?? 0) * 1000, deps.syncWaitMs)
      : Math.min(prefer.waitSeconds === undefined ? deps.syncWaitMs : prefer.waitSeconds * 1000, deps.syncWaitMs);
    if (waitMs === 0) {
      handle.cancel();
      sendAccepted(res, jobId);
      return;
    }
    const outcome = await handle.wait(waitMs);
    if (res.destroyed) return;
    if (outcome !== null) {
      sendOutcome(res, deps.ring, outcome);
      return;
    }
    if (prefer.respondAsync) {
      sendAccepted(res, jobId);
      return;
    }
    sendProblem(res, new RelayError('wait_timeout', `the job did not finish within ${Math.round(waitMs / 1000)} s; poll ${jobLocation(jobId)}`), {
      jobId,
      location: jobLocation(jobId),
    });
  });

  return router;
}

/** A request whose Idempotency-Key was used before: the first result, 409 while it runs, 422 if it differs. */
async function replayEarlier(res: Response, deps: ForwardRouteDeps, earlier: IdempotencyClaim, fingerprint: string): Promise<void> {
  if (earlier.fingerprint !== fingerprint) {
    throw new RelayError('idempotency_key_reused', 'this Idempotency-Key was first used with another method, URL, service, body, caller or LP-authorization-override');
  }
  const outcome = await deps.queues.finalOutcome('forward', earlier.jobId);
  if (outcome === null) {
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
