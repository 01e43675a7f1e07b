import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RelayError } from '@mtls-relay/shared/errors';

/**
 * OAuth 1.0a nonce replay protection (RFC 5849 §3.3) in Redis, shared by every API process. A nonce is
 * claimed with one `SET NX` whose TTL is the time its timestamp stays inside the window (the window itself
 * for a fresh timestamp), so of any number of concurrent replays exactly one wins, and a nonce is
 * remembered for as long as its request could still be accepted.
 */
export class NonceStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #windowSeconds: number;

  constructor(redis: Redis, prefix: string, windowSeconds: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#windowSeconds = windowSeconds;
  }

  /** The Redis key of a nonce (hashed: nonces are caller-chosen text of any shape). */
  key(consumerKey: string, timestamp: number, nonce: string): string {
    const digest = createHash('sha256').update(`${consumerKey}\0${timestamp}\0${nonce}`).digest('base64url');
    return `${this.#prefix}:oauth-nonce:${digest}`;
  }

  /** True when this is the first use of the nonce; false for a replay. Throws 503 when Redis is unavailable. */
  async claim(consumerKey: string, timestamp: number, nonce: string, nowSeconds: number): Promise<boolean> {
    const ttl = Math.max(1, Math.min(2 * this.#windowSeconds, timestamp + this.#windowSeconds - nowSeconds + 1));
    try {
      const set = await this.#redis.set(this.key(consumerKey, timestamp, nonce), '1', 'EX', ttl, 'NX');
      return set === 'OK';
    } catch (cause) {
      throw new RelayError('auth_unavailable', 'the nonce store (Redis) is unavailable; try again', { cause, retryAfter: 1 });
    }
  }
}
