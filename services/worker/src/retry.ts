import { IDEMPOTENT_METHODS } from '@mtls-relay/shared/jobs';
import type { ForwardEntry } from '@mtls-relay/shared/jobs';
import type { RelayError } from '@mtls-relay/shared/errors';
import { retryClassOf } from './transport-errors.ts';

/** The retry rules of a forward, in one place: which failures get another attempt, and after how long. */

/** A failed attempt that BullMQ may retry (retry jobs only); `retryAfter` (seconds) feeds the backoff strategy. */
export class AttemptError extends Error {
  readonly retryAfter: number | undefined;
  constructor(payload: string, retryAfter: number | undefined) {
    super(payload);
    this.name = 'AttemptError';
    this.retryAfter = retryAfter;
  }
}

/** May this forward be sent again after it possibly reached the target? */
export function isRetrySafe(entry: Pick<ForwardEntry, 'method' | 'keyed'>): boolean {
  return IDEMPOTENT_METHODS.has(entry.method) || entry.keyed;
}

/**
 * What to do after a failed attempt: `retry` (another attempt follows), or `final` (the failure is the outcome).
 * Before-send failures are retried for every method; after-send ones only when the forward is retry-safe.
 */
export function afterFailure(err: Pick<RelayError, 'code'>, entry: Pick<ForwardEntry, 'method' | 'keyed'>, lastAttempt: boolean): 'retry' | 'final' {
  const retryClass = retryClassOf(err.code);
  const retryable = retryClass === 'before-send' || (retryClass === 'after-send' && isRetrySafe(entry));
  return retryable && !lastAttempt ? 'retry' : 'final';
}

export interface BackoffSettings {
  retryBaseDelayMs: number;
  /** Upper bound of one backoff delay, ms. */
  retryMaxDelayMs: number;
}

/**
 * Exponential backoff with full jitter; a target's Retry-After is a floor. `attemptsMade` counts every attempt
 * of the forward so far (those of its batch job included). `random` is injectable for tests.
 */
export function backoffDelay(attemptsMade: number, retryAfterSeconds: number | undefined, settings: BackoffSettings, random: () => number = Math.random): number {
  const ceiling = Math.min(settings.retryMaxDelayMs, settings.retryBaseDelayMs * 2 ** Math.max(0, attemptsMade - 1));
  const jittered = Math.floor(random() * ceiling);
  return Math.max(jittered, (retryAfterSeconds ?? 0) * 1000);
}
