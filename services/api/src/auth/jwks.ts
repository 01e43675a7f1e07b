import { createLocalJWKSet, errors } from 'jose';
import type { FlattenedJWSInput, JSONWebKeySet, JWSHeaderParameters, JWTVerifyGetKey } from 'jose';
import type { Logger } from '@mtls-relay/shared/logging';
import { errorSummary } from '@mtls-relay/shared/logging';

export interface RemoteJwksOptions {
  /** Keys are refetched after this long (stale keys stay in use while a refetch fails). */
  cacheMs: number;
  /** At most one fetch per this interval, whatever happens: an outage or a storm of unknown kids cannot amplify. */
  minIntervalMs: number;
  timeoutMs: number;
  logger: Logger;
}

/**
 * The keys of AUTH_JWKS_URL. Unlike jose's createRemoteJWKSet, which refetches on every request while the
 * endpoint is down, every fetch attempt (success or failure) starts the minimum interval.
 */
export class RemoteJwks {
  readonly #url: string;
  readonly #opts: RemoteJwksOptions;
  #keys: ReturnType<typeof createLocalJWKSet> | undefined;
  #loadedAt = Number.NEGATIVE_INFINITY;
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;

  constructor(url: string, opts: RemoteJwksOptions) {
    this.#url = url;
    this.#opts = opts;
  }

  /** A jose key resolver: the key for the token's header, fetching (within the rate limit) when needed. */
  readonly getKey: JWTVerifyGetKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput) => {
    if (this.#keys === undefined || Date.now() - this.#loadedAt >= this.#opts.cacheMs) await this.#refresh();
    const keys = this.#keys;
    if (keys === undefined) throw new errors.JWKSNoMatchingKey('the JWKS endpoint has not provided keys');
    try {
      return await keys(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || !this.#mayFetch()) throw err;
      // An unknown kid may be a newly rotated key: look once, then answer from what we have.
      await this.#refresh();
      const again = this.#keys;
      if (again === undefined || again === keys) throw err;
      return again(header, token);
    }
  };

  #mayFetch(): boolean {
    return Date.now() - this.#attemptedAt >= this.#opts.minIntervalMs;
  }

  #refresh(): Promise<void> {
    if (this.#pending !== undefined) return this.#pending;
    if (!this.#mayFetch()) return Promise.resolve();
    this.#attemptedAt = Date.now();
    this.#pending = this.#load().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #load(): Promise<void> {
    try {
      const res = await fetch(this.#url, {
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#opts.timeoutMs),
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`the JWKS endpoint answered ${res.status}`);
      }
      const json = (await res.json()) as JSONWebKeySet;
      this.#keys = createLocalJWKSet(json);
      this.#loadedAt = Date.now();
      this.#opts.logger.info({ keys: json.keys.length }, 'JWKS loaded');
    } catch (err) {
      this.#opts.logger.warn({ ...errorSummary(err), retryInSeconds: Math.round(this.#opts.minIntervalMs / 1000) }, 'JWKS fetch failed; Bearer tokens that need it are refused until it succeeds');
    }
  }
}
