import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RelayError } from '@mtls-relay/shared/errors';

export interface IdempotencyClaim {
  jobId: string;
  fingerprint: string;
  claimedAt: number;
}

/** How long an Idempotency-Key is remembered (and the first result kept): at least 24 h. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * What makes two requests "the same request" for an Idempotency-Key: method, URL, service and body, and who
 * asks with which target credential. The calling principal (kind and id) and LP-authorization-override (only
 * its hash) are part of it, so that another caller of the same account, or the same caller with another
 * credential for the target, never gets a response made with someone else's credential replayed.
 */
export function requestFingerprint(parts: {
  method: string;
  url: string;
  serviceName: string;
  body: Buffer;
  principal: { kind: string; id: string } | undefined;
  override: string | undefined;
}): string {
  const who = parts.principal === undefined ? '-' : `${parts.principal.kind}:${parts.principal.id}`;
  const override = parts.override === undefined ? '-' : sha256(parts.override);
  return sha256(`${parts.method}\n${parts.url}\n${parts.serviceName}\n${sha256(parts.body)}\n${sha256(who)}\n${override}`);
}

/**
 * Idempotency-Key per account (IETF httpapi-idempotency-key draft, Stripe's semantics): the first request
 * with a key claims it atomically (SET NX with a 24 h TTL) and records its job; a later request with the same
 * key gets the first result, 409 while the first is still running, 422 if its content differs.
 */
export class IdempotencyKeys {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = `${prefix}:idem`;
  }

  #key(accountId: string, key: string): string {
    return `${this.#prefix}:${accountId}:${sha256(key)}`;
  }

  /** Claims the key for `jobId`; returns null when claimed, or the earlier claim. */
  async claim(accountId: string, key: string, claim: IdempotencyClaim): Promise<IdempotencyClaim | null> {
    try {
      const k = this.#key(accountId, key);
      const set = await this.#redis.set(k, JSON.stringify(claim), 'EX', IDEMPOTENCY_TTL_SECONDS, 'NX');
      if (set === 'OK') return null;
      const existing = await this.#redis.get(k);
      return existing === null ? await this.claim(accountId, key, claim) : (JSON.parse(existing) as IdempotencyClaim);
    } catch (cause) {
      if (cause instanceof SyntaxError) throw new RelayError('internal', 'an idempotency record is unreadable', { cause });
      throw new RelayError('queue_unavailable', 'Redis is unavailable; nothing was enqueued', { cause, retryAfter: 1 });
    }
  }

  /** Gives the key up again (the job could not be enqueued). */
  async release(accountId: string, key: string, jobId: string): Promise<void> {
    const k = this.#key(accountId, key);
    const existing = await this.#redis.get(k).catch(() => null);
    if (existing !== null && (JSON.parse(existing) as IdempotencyClaim).jobId === jobId) await this.#redis.del(k).catch(() => 0);
  }
}
