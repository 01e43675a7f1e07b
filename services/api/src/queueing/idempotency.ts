import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RelayError } from '@mtls-relay/shared/errors';
import { isCluster, pipelineBySlot } from '@mtls-relay/shared/redis';
import { accountTag } from '@mtls-relay/shared/shards';

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
  /** A claim older than this whose forward does not exist was never enqueued (see `isStale`). */
  readonly staleAfterMs: number;

  readonly #byAccount: boolean;

  /**
   * `byAccount` (QUEUE_SHARDS > 1): each account's keys carry a hash tag of their own, so that on a Cluster the
   * records spread over the masters by account; otherwise the keys are exactly as before.
   */
  constructor(redis: Redis, prefix: string, commandTimeoutMs = 5_000, options: { byAccount?: boolean } = {}) {
    this.#redis = redis;
    this.#prefix = `${prefix}:idem`;
    this.#byAccount = options.byAccount === true;
    this.staleAfterMs = 3 * commandTimeoutMs;
  }

  /**
   * A claim is stale when it is older than any enqueue can take and its forward does not exist: its request
   * answered 503 while Redis stalled, and the claim landed after. A new request may take such a key over.
   */
  isStale(claim: IdempotencyClaim, forwardExists: boolean, now = Date.now()): boolean {
    return !forwardExists && now - claim.claimedAt >= this.staleAfterMs;
  }

  #key(accountId: string, key: string): string {
    return `${this.#prefix}:${this.#byAccount ? accountTag(accountId) : accountId}:${sha256(key)}`;
  }

  /**
   * Claims several keys in one round trip (`SET … NX GET`, Redis 7): for each, null when claimed now, or the
   * earlier claim. Throws RelayError queue_unavailable when Redis does not answer (a claim may then land later:
   * see `releaseStale`). On a Cluster (keys by account, one pipeline per slot) a slot that does not answer fails
   * only its own claims: those come back as RelayError queue_unavailable, the others as usual.
   */
  async claimMany(claims: ReadonlyArray<{ accountId: string; key: string; claim: IdempotencyClaim }>): Promise<Array<IdempotencyClaim | null | RelayError>> {
    let replies: Array<[Error | null, unknown]> | null;
    const failedAlone = new Set<number>();
    try {
      // One pipeline (one per slot on a Cluster).
      const keys = claims.map((c) => this.#key(c.accountId, c.key));
      replies = await pipelineBySlot(this.#redis, keys, (pipeline, i) => {
        pipeline.set(keys[i] as string, JSON.stringify(claims[i]?.claim), 'EX', IDEMPOTENCY_TTL_SECONDS, 'NX', 'GET');
      });
      // A pipeline reports a command that timed out as that command's error, not as a rejection.
      const failed = replies?.find(([err]) => err !== null)?.[0];
      if (isCluster(this.#redis) && failed !== undefined && replies.some(([err]) => err === null)) {
        replies.forEach(([err], i) => {
          if (err !== null) failedAlone.add(i);
        });
      } else if (replies === null || failed !== undefined) {
        throw failed ?? new Error('the pipeline did not run');
      }
    } catch (cause) {
      // The claims may still run (a stalled Redis runs them when it resumes): queue their release behind them
      // on the same connection, so that the keys are free again the moment Redis answers.
      for (const c of claims) void this.release(c.accountId, c.key, c.claim.jobId);
      throw new RelayError('queue_unavailable', 'Redis is unavailable; nothing was enqueued', { cause, retryAfter: 1 });
    }
    return claims.map((c, i) => {
      if (failedAlone.has(i)) {
        void this.release(c.accountId, c.key, c.claim.jobId);
        return new RelayError('queue_unavailable', 'Redis is unavailable; nothing was enqueued', { cause: replies?.[i]?.[0], retryAfter: 1 });
      }
      const value = replies?.[i]?.[1] ?? null;
      if (value === null) return null;
      try {
        return JSON.parse(String(value)) as IdempotencyClaim;
      } catch (cause) {
        throw new RelayError('internal', 'an idempotency record is unreadable', { cause });
      }
    });
  }

  /** Gives the key up again, if it is still this claim's (the job could not be enqueued, or never existed). */
  async release(accountId: string, key: string, jobId: string): Promise<boolean> {
    const k = this.#key(accountId, key);
    try {
      return (await this.#redis.eval(RELEASE_IF_JOB, 1, k, jobId)) === 1;
    } catch {
      return false;
    }
  }
}

/** Deletes the claim only if it still names this job (compare-and-delete in one step). */
const RELEASE_IF_JOB = `
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).jobId == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0`;
