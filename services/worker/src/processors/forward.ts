import { UnrecoverableError } from 'bullmq';
import type { Job } from 'bullmq';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { encodeFailure, RelayError, relayErrorOf, toErrorPayload } from '@mtls-relay/shared/errors';
import type { ForwardRecord } from '@mtls-relay/shared/forward-records';
import { relayableResponseHeaders } from '@mtls-relay/shared/http';
import { forwardBatchSchema } from '@mtls-relay/shared/jobs';
import { batchRequestReader, sealRequest } from '@mtls-relay/shared/sealed-parts';
import type { ForwardBatch, ForwardBatchResult, ForwardEntry, ForwardResult, HeaderList, RequestParts, ResponseParts } from '@mtls-relay/shared/jobs';
import { errorSummary } from '@mtls-relay/shared/logging';
import type { Logger } from '@mtls-relay/shared/logging';
import { parseTargetUrl } from '@mtls-relay/shared/url';
import type { BreakerRegistry } from '../breakers.ts';
import type { TargetClient } from '../outbound/target.ts';
import type { ForwardObserver } from '../metrics.ts';
import { parseRetryAfter, RETRYABLE_STATUS } from '../transport-errors.ts';
import { afterFailure, AttemptError, isRetrySafe } from '../retry.ts';
import type { Recorder } from '../shard-recorders.ts';
import type { CertificateResolver } from '../resolver.ts';
import type { Limiter } from '../limiter.ts';

export interface ForwardDeps {
  ring: KeyRing;
  resolver: CertificateResolver;
  target: TargetClient;
  breakers: BreakerRegistry;
  recorder: Recorder;
  /** Adds the retry job that continues a batch's forward after a failed attempt. */
  retry: (entry: ForwardEntry, next: { attemptsBefore: number; maxAttempts: number; keepSeconds: number; delayMs: number }) => Promise<void>;
  /** Backoff before the next attempt (exponential with jitter; a Retry-After is a floor). */
  backoff: (attemptsMade: number, retryAfterSeconds: number | undefined) => number;
  /** Bounds the forwards this process sends at once (WORKER_CONCURRENCY), over all its jobs. */
  limiter: Limiter;
  observer: ForwardObserver;
  logger: Logger;
  allowHttp: boolean;
  /** Upper bound for a target's Retry-After that we honour, in seconds. */
  retryAfterCapSeconds: number;
  /** This process's id: noted on the jobs it runs, looked for when one is taken over. */
  instanceId: string;
  /** How long a takeover waits for a still-connected previous runner to record its forwards. */
  takeoverWaitMs: number;
}

/**
 * The forward job processor. A job carries a batch of forwards (jobs.ts): each is sent on its own, recorded as
 * soon as it finishes (recorder.ts, which also replies to the waiting api), and the job completes once every
 * forward is recorded. A forward that needs another attempt continues in a retry job of its own; a retry job
 * (one forward) is retried by BullMQ with backoff.
 *
 * A job taken over from another run (its lock expired) first looks at what is recorded: recorded forwards are
 * done. If the previous runner is still connected to Redis (it was only cut off by a stalled Redis), the takeover
 * waits for it to record what it sent. What is still unrecorded after that may have reached the target: it is
 * sent again only when retry-safe, otherwise it ends as `delivery_uncertain`.
 */
export function createForwardProcessor(deps: ForwardDeps): (job: Job) => Promise<ForwardBatchResult> {
  return async (job) => {
    const jobId = job.id as string;
    const parsed = forwardBatchSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(encodeFailure(new RelayError('invalid_job', 'the job payload is not valid')));
    const batch = parsed.data;
    const takenOver = job.attemptsStarted > job.attemptsMade + 1;
    let todo = batch.forwards;
    if (takenOver) todo = await unrecordedAfterTakeover(deps, jobId, batch);
    deps.recorder.markRunner(jobId, deps.instanceId);

    const attempt = batch.attemptsBefore + job.attemptsMade + 1;
    // A run is one fetch of the job: a takeover is another run of the same attempt.
    const token = `${deps.instanceId}:${job.attemptsStarted}`;
    const run: RunContext = { jobId, batch, attempt, lastAttempt: attempt >= batch.maxAttempts, takenOver, token, requestOf: batchRequestReader(deps.ring, jobId, batch) };
    const outcomes = await Promise.allSettled(todo.map((entry) => deps.limiter.run(() => runForward(deps, run, entry))));
    // Only a retry job (one forward) throws: AttemptError for BullMQ's backoff, UnrecoverableError when final.
    const thrown = outcomes.find((o) => o.status === 'rejected');
    if (thrown !== undefined) throw thrown.reason;
    return { v: 2, forwards: batch.forwards.length };
  };
}

interface RunContext {
  jobId: string;
  batch: ForwardBatch;
  attempt: number;
  lastAttempt: boolean;
  takenOver: boolean;
  token: string;
  /** Opens a forward's request (its own, or the batch's shared piece, opened once). */
  requestOf: (entry: ForwardEntry) => RequestParts;
}

async function unrecordedAfterTakeover(deps: ForwardDeps, jobId: string, batch: ForwardBatch): Promise<ForwardEntry[]> {
  const ids = batch.forwards.map((f) => f.id);
  let recorded = await deps.recorder.recorded(jobId, ids);
  const previous = await deps.recorder.runnerOf(jobId);
  const deadline = Date.now() + deps.takeoverWaitMs;
  while (recorded.size < ids.length && previous !== null && Date.now() < deadline && (await deps.recorder.isConnected(previous, jobId))) {
    await new Promise((r) => setTimeout(r, 200));
    recorded = await deps.recorder.recorded(jobId, ids);
  }
  deps.logger.warn({ jobId, forwards: ids.length, recorded: recorded.size, previous }, 'forward job taken over after its lock expired');
  return batch.forwards.filter((f) => !recorded.has(f.id));
}

async function runForward(deps: ForwardDeps, run: RunContext, entry: ForwardEntry): Promise<void> {
  // The ids go on each line rather than into a child logger: a child per forward costs more than its lines.
  const ids = { jobId: entry.id, accountId: entry.accountId, requestId: entry.requestId };
  const log = deps.logger;
  const started = Date.now();
  const record = (r: ForwardRecord, response?: ResponseParts): Promise<void> =>
    deps.recorder.write({ jobId: run.jobId, forwardId: entry.id, record: r, replyTo: entry.replyTo, ...(response === undefined ? {} : { response }) });
  const fail = async (err: RelayError): Promise<void> => {
    await record({ a: entry.accountId, n: run.attempt, ok: false, error: toErrorPayload(err) });
    deps.observer.forwardFailed(err.code);
    if (run.batch.retry) throw new UnrecoverableError(encodeFailure(err));
  };

  if (log.isLevelEnabled('debug')) log.debug({ ...ids, attempt: run.attempt, takenOver: run.takenOver }, 'forward attempt started');
  // A forward that must not be sent twice is claimed first (recorder.claimStart). A takeover that wins the claim
  // knows the run it took over never started this forward, and sends it; one that loses it records
  // delivery_uncertain. A run that lost its job to a takeover finds the forward claimed, and leaves it alone.
  if (!isRetrySafe(entry) && !(await deps.recorder.claimStart(run.jobId, entry.id, run.attempt, run.token))) {
    if (run.takenOver) {
      await fail(
        new RelayError(
          'delivery_uncertain',
          `the worker handling this ${entry.method} stopped or lost its job mid-request; it was not sent again because it is not idempotent and had no Idempotency-Key`,
        ),
      );
    }
    return;
  }
  let result: ForwardResult;
  let response: ResponseParts;
  let request: RequestParts | undefined;
  try {
    request = run.requestOf(entry);
    ({ result, response } = await forwardOnce(deps, entry, request, run.lastAttempt));
  } catch (caught) {
    const err = toRelayError(caught);
    const next = afterFailure(err, entry, run.lastAttempt);
    const targetStatus = err.extra?.['retryableStatus'];
    log.warn(
      { ...ids, code: targetStatus === undefined ? err.code : 'target_status', targetStatus, attempt: run.attempt, willRetry: next === 'retry', ms: Date.now() - started },
      'forward attempt failed',
    );
    deps.observer.attemptFailed(err.code, next === 'final');
    if (next === 'final') {
      await fail(err);
      return;
    }
    if (run.batch.retry) throw new AttemptError(encodeFailure(err), err.retryAfter);
    try {
      // A retry job carries its forward alone: its request goes sealed in its own entry.
      const alone = entry.request !== undefined || request === undefined ? entry : { ...entry, request: sealRequest(deps.ring, entry.id, request) };
      await deps.retry(alone, {
        attemptsBefore: run.attempt,
        maxAttempts: run.batch.maxAttempts,
        keepSeconds: run.batch.keepSeconds,
        delayMs: deps.backoff(run.attempt, err.retryAfter),
      });
    } catch (addError) {
      // No retry job (Redis refused the add): this attempt's failure is the outcome, not an internal error.
      log.warn({ ...ids, ...errorSummary(addError) }, 'could not add the retry job; the attempt is final');
      await fail(err);
      return;
    }
    await record({ a: entry.accountId, n: run.attempt, moved: true });
    return;
  }
  log.info({ ...ids, status: result.status, bytes: result.bodyBytes, mtls: result.mtls.used, attempt: run.attempt, ms: Date.now() - started }, 'forwarded');
  await record({ a: entry.accountId, n: run.attempt, ok: true, result }, response);
  deps.observer.forwardCompleted(result);
}

/** The result, and the response in clear: the recorder seals it into `result.response` as it writes the record. */
async function forwardOnce(deps: ForwardDeps, entry: ForwardEntry, request: RequestParts, lastAttempt: boolean): Promise<{ result: ForwardResult; response: ResponseParts }> {
  const url = parseTargetUrl(entry.url + request.query, { allowHttp: deps.allowHttp });
  const resolution = await deps.resolver.resolve(entry.accountId, entry.serviceName, url);
  if (resolution.material === null && (entry.requireCertificate || resolution.hostRequiresCertificate)) {
    throw new RelayError(
      'certificate_required',
      entry.requireCertificate
        ? 'no valid certificate is mapped for this account, service and URL, and LP-stop-if-certificate-not-found is true'
        : `no valid certificate is mapped, and the hostname settings require one for ${url.hostname}`,
    );
  }
  const headers = withRequestId(request.headers, entry.requestId);
  const body = request.body;
  const response = await deps.breakers.fire(
    url.origin,
    () => deps.target.send({ url, method: entry.method, headers, body, material: resolution.material, roots: resolution.roots }),
    (r) => r.status >= 500,
  );
  if (RETRYABLE_STATUS.has(response.status) && !lastAttempt && isRetrySafe(entry)) {
    const retryAfterHeader = response.headers.find(([n]) => n.toLowerCase() === 'retry-after')?.[1];
    throw new RelayError('target_unreachable', `the target answered ${response.status}`, {
      retryAfter: parseRetryAfter(retryAfterHeader, deps.retryAfterCapSeconds),
      extra: { retryableStatus: response.status },
    });
  }
  return {
    result: {
      v: 1,
      status: response.status,
      response: '',
      bodyBytes: response.body.length,
      mtls: resolution.material === null ? { used: false } : { used: true, certificateId: resolution.material.id },
      finishedAt: Date.now(),
    },
    response: { headers: relayableResponseHeaders(response.headers), body: response.body },
  };
}

/** The target sees the relay's request id (the caller's own when it sent a usable one), exactly once. */
export function withRequestId(headers: HeaderList, requestId: string): HeaderList {
  if (requestId === '') return headers;
  return [...headers.filter(([name]) => name.toLowerCase() !== 'x-request-id'), ['X-Request-Id', requestId]];
}

function toRelayError(err: unknown): RelayError {
  const mapped = relayErrorOf(err);
  return mapped instanceof RelayError ? mapped : new RelayError('internal', 'unexpected failure in the worker', { cause: err });
}
