import { UnrecoverableError } from 'bullmq';
import type { Job } from 'bullmq';
import type { KeyRing } from '@mtls-relay/shared/crypto';
import { RelayError, StoreError, toErrorPayload } from '@mtls-relay/shared/errors';
import { relayableResponseHeaders } from '@mtls-relay/shared/http';
import { forwardJobSchema, IDEMPOTENT_METHODS, openBody, openHeaders, sealBody, sealHeaders } from '@mtls-relay/shared/jobs';
import type { ForwardJob, ForwardResult, HeaderList } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';
import { parseTargetUrl } from '@mtls-relay/shared/url';
import type { BreakerRegistry } from '../breakers.ts';
import type { TargetClient } from '../clients/target.ts';
import { parseRetryAfter, RETRYABLE_STATUS, retryClassOf } from '../outcome.ts';
import type { CertificateResolver } from '../resolver.ts';

export interface ForwardDeps {
  ring: KeyRing;
  resolver: CertificateResolver;
  target: TargetClient;
  breakers: BreakerRegistry;
  logger: Logger;
  allowHttp: boolean;
  /** Upper bound for a target's Retry-After that we honour, in seconds. */
  retryAfterCapSeconds: number;
}

/** A failed attempt that BullMQ may retry; `retryAfter` (seconds) feeds the backoff strategy. */
export class AttemptError extends Error {
  readonly retryAfter: number | undefined;
  constructor(payload: string, retryAfter: number | undefined) {
    super(payload);
    this.name = 'AttemptError';
    this.retryAfter = retryAfter;
  }
}

/** May this job's request be sent again after it possibly reached the target? */
export function isRetrySafe(job: Pick<ForwardJob, 'method' | 'idempotencyKey'>): boolean {
  return IDEMPOTENT_METHODS.has(job.method) || job.idempotencyKey !== undefined;
}

export function createForwardProcessor(deps: ForwardDeps): (job: Job) => Promise<ForwardResult> {
  return async (job) => {
    const jobId = job.id as string;
    const parsed = forwardJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(JSON.stringify({ code: 'invalid_job', detail: 'the job payload is not valid' }));
    const data = parsed.data;
    const log = deps.logger.child({ jobId, accountId: data.accountId, requestId: data.requestId });
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const started = Date.now();
    log.debug({ attempt: job.attemptsMade + 1, started: job.attemptsStarted }, 'forward attempt started');

    try {
      // A job that was started more often than it failed was taken over from a worker that died mid-request.
      if (job.attemptsStarted > job.attemptsMade + 1 && !isRetrySafe(data)) {
        throw new RelayError('delivery_uncertain', `the worker handling this ${data.method} stopped mid-request; it was not sent again because it is not idempotent and had no Idempotency-Key`);
      }
      const result = await forwardOnce(deps, jobId, data, lastAttempt);
      log.info(
        { status: result.status, bytes: result.bodyBytes, mtls: result.mtls.used, attempt: job.attemptsMade + 1, ms: Date.now() - started },
        'forwarded',
      );
      return result;
    } catch (err) {
      const relayErr = toRelayError(err);
      const retryClass = retryClassOf(relayErr.code);
      const retryable = retryClass === 'before-send' || (retryClass === 'after-send' && isRetrySafe(data));
      log.warn(
        { code: relayErr.code, attempt: job.attemptsMade + 1, willRetry: retryable && !lastAttempt, ms: Date.now() - started },
        'forward attempt failed',
      );
      const payload = JSON.stringify(toErrorPayload(relayErr));
      if (retryable && !lastAttempt) throw new AttemptError(payload, relayErr.retryAfter);
      throw new UnrecoverableError(payload);
    }
  };
}

async function forwardOnce(deps: ForwardDeps, jobId: string, data: ForwardJob, lastAttempt: boolean): Promise<ForwardResult> {
  const url = parseTargetUrl(data.url, { allowHttp: deps.allowHttp });
  const resolution = await deps.resolver.resolve(data.accountId, data.serviceName, url);
  if (resolution.material === null && (data.requireCertificate || resolution.hostRequiresCertificate)) {
    throw new RelayError(
      'certificate_required',
      data.requireCertificate
        ? 'no valid certificate is mapped for this account, service and URL, and LP-stop-if-certificate-not-found is true'
        : `no valid certificate is mapped, and the hostname settings require one for ${url.hostname}`,
    );
  }
  const headers = withRequestId(openHeaders(deps.ring, jobId, 'request', data.headers), data.requestId);
  const body = openBody(deps.ring, jobId, 'request', data.body);
  const response = await deps.breakers.fire(
    url.origin,
    () => deps.target.send({ url, method: data.method, headers, body, material: resolution.material }),
    (r) => r.status >= 500,
  );
  if (RETRYABLE_STATUS.has(response.status) && !lastAttempt && isRetrySafe(data)) {
    const retryAfterHeader = response.headers.find(([n]) => n.toLowerCase() === 'retry-after')?.[1];
    throw new RelayError('target_unreachable', `the target answered ${response.status}`, {
      retryAfter: parseRetryAfter(retryAfterHeader, deps.retryAfterCapSeconds),
      extra: { retryableStatus: response.status },
    });
  }
  return {
    v: 1,
    status: response.status,
    headers: sealHeaders(deps.ring, jobId, 'response', relayableResponseHeaders(response.headers)),
    body: sealBody(deps.ring, jobId, 'response', response.body),
    bodyBytes: response.body.length,
    mtls: resolution.material === null ? { used: false } : { used: true, certificateId: resolution.material.id },
    finishedAt: Date.now(),
  };
}

/** The target sees the relay's request id (the caller's own when it sent a usable one), exactly once. */
export function withRequestId(headers: HeaderList, requestId: string): HeaderList {
  if (requestId === '') return headers;
  return [...headers.filter(([name]) => name.toLowerCase() !== 'x-request-id'), ['X-Request-Id', requestId]];
}

function toRelayError(err: unknown): RelayError {
  if (err instanceof RelayError) return err;
  if (err instanceof StoreError) {
    if (err.kind === 'denied') return new RelayError('store_denied', "the certificate store refused the lookup; check the relay's Vault policy", { cause: err });
    return new RelayError('store_unavailable', 'the certificate store did not answer', { cause: err, retryAfter: 1 });
  }
  return new RelayError('internal', 'unexpected failure in the worker', { cause: err });
}
