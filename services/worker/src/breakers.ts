import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { RelayError } from '@mtls-relay/shared/errors';
import type { Logger } from '@mtls-relay/shared/logging';
import { retryClassOf } from './outcome.ts';

export interface BreakerSettings {
  /** Failure percentage in the rolling window above which the breaker opens. */
  errorThresholdPercentage: number;
  /** Calls in the window before the percentage counts. */
  volumeThreshold: number;
  /** How long an open breaker waits before letting one trial call through. */
  resetTimeoutMs: number;
  rollingWindowMs: number;
  /** At most this many breakers (one per target origin); the least recently used is dropped. */
  maxBreakers: number;
}

/** A target answer that counts as a failure of the origin (5xx) but is still relayed to the caller. */
class FailedResponse<T> extends Error {
  readonly response: T;
  constructor(response: T) {
    super('target answered with a server error');
    this.response = response;
  }
}

type Action = (run: () => Promise<unknown>) => Promise<unknown>;

const BUCKETS = 10;

/**
 * Circuit breakers per target origin (opossum), in a bounded LRU map. Counted as failures: transport errors
 * that say something about the origin (refused, timed out, reset) and 5xx answers. Not counted: 4xx answers,
 * TLS and certificate problems of one client certificate, policy refusals. opossum's own timeout is off:
 * every request has its own AbortSignal, so one slow call never aborts the others.
 *
 * A breaker is made for an origin at its first counted failure, and dropped again once a whole window passes
 * closed and without failures: an origin with no breaker is healthy, and its calls go straight through. So
 * a worker that talks to many healthy origins keeps no per-origin state for them (an opossum breaker is about
 * 7 KB of heap). Calls before that first failure are not counted: the failure percentage can only come out
 * higher than with them, and the volume threshold counts calls from the first failure on.
 */
export class BreakerRegistry {
  readonly #settings: BreakerSettings;
  readonly #logger: Logger;
  readonly #breakers = new Map<string, CircuitBreaker<Parameters<Action>, unknown>>();
  // One timer rotates the statistics windows of every breaker (opossum would start two timers per breaker),
  // and once a window drops the breakers of origins that have recovered.
  readonly #rotate = new EventEmitter().setMaxListeners(0);
  readonly #rotateTimer: NodeJS.Timeout;
  #ticks = 0;

  constructor(settings: BreakerSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
    this.#rotateTimer = setInterval(() => {
      this.#rotate.emit('rotate');
      if (++this.#ticks % BUCKETS === 0) this.#dropRecovered();
    }, Math.max(100, Math.floor(settings.rollingWindowMs / BUCKETS)));
    this.#rotateTimer.unref();
  }

  /** Breakers currently kept (origins with a failure in the last window, or not closed). */
  get size(): number {
    return this.#breakers.size;
  }

  /** Breaker states for metrics: origin → 'closed' | 'open' | 'half-open' (origins with no breaker are closed). */
  states(): Map<string, 'closed' | 'open' | 'half-open'> {
    const out = new Map<string, 'closed' | 'open' | 'half-open'>();
    for (const [origin, b] of this.#breakers) out.set(origin, b.halfOpen ? 'half-open' : b.opened ? 'open' : 'closed');
    return out;
  }

  #existing(origin: string): CircuitBreaker<Parameters<Action>, unknown> | undefined {
    const existing = this.#breakers.get(origin);
    if (existing !== undefined) {
      this.#breakers.delete(origin);
      this.#breakers.set(origin, existing);
    }
    return existing;
  }

  #create(origin: string): CircuitBreaker<Parameters<Action>, unknown> {
    const action: Action = (run) => run();
    const breaker = new CircuitBreaker<Parameters<Action>, unknown>(action, {
      timeout: false,
      errorThresholdPercentage: this.#settings.errorThresholdPercentage,
      volumeThreshold: this.#settings.volumeThreshold,
      resetTimeout: this.#settings.resetTimeoutMs,
      rollingCountTimeout: this.#settings.rollingWindowMs,
      rollingCountBuckets: BUCKETS,
      // No per-breaker snapshot timers or latency arrays: only the counts are used.
      enableSnapshots: false,
      rollingPercentilesEnabled: false,
      rotateBucketController: this.#rotate,
      // true = "not a failure of this origin".
      errorFilter: (err: unknown) => !isOriginFailure(err),
    });
    breaker.on('open', () => this.#logger.warn({ origin }, 'circuit opened: calls to this origin fail fast'));
    breaker.on('halfOpen', () => this.#logger.info({ origin }, 'circuit half-open: letting one trial through'));
    breaker.on('close', () => this.#logger.info({ origin }, 'circuit closed'));
    this.#breakers.set(origin, breaker);
    while (this.#breakers.size > this.#settings.maxBreakers) {
      const [oldest, b] = this.#breakers.entries().next().value as [string, CircuitBreaker];
      this.#breakers.delete(oldest);
      b.shutdown();
    }
    return breaker;
  }

  /** Counts a failure of an origin that had no breaker: its breaker starts with this failure. */
  async #recordFailure(origin: string, failure: unknown): Promise<void> {
    const breaker = this.#existing(origin) ?? this.#create(origin);
    await breaker.fire(() => Promise.reject(failure)).catch(() => undefined);
  }

  #dropRecovered(): void {
    for (const [origin, b] of this.#breakers) {
      if (b.closed && b.stats.failures === 0) {
        this.#breakers.delete(origin);
        b.shutdown();
      }
    }
  }

  /**
   * Runs `send` under the origin's breaker. `isFailure(result)` marks answers that count against the origin
   * (they are still returned). While the breaker is open, throws circuit_open without calling `send`.
   */
  async fire<T>(origin: string, send: () => Promise<T>, isFailure: (result: T) => boolean): Promise<T> {
    const breaker = this.#existing(origin);
    if (breaker === undefined) {
      let result: T;
      try {
        result = await send();
      } catch (err) {
        if (isOriginFailure(err)) await this.#recordFailure(origin, err);
        throw err;
      }
      if (isFailure(result)) await this.#recordFailure(origin, new FailedResponse(result));
      return result;
    }
    try {
      return (await breaker.fire(async () => {
        const result = await send();
        if (isFailure(result)) throw new FailedResponse(result);
        return result;
      })) as T;
    } catch (err) {
      if (err instanceof FailedResponse) return err.response as T;
      if ((err as { code?: unknown }).code === 'EOPENBREAKER') {
        throw new RelayError('circuit_open', `calls to ${origin} are paused after repeated failures`, {
          retryAfter: Math.ceil(this.#settings.resetTimeoutMs / 1000),
        });
      }
      throw err;
    }
  }

  shutdown(): void {
    clearInterval(this.#rotateTimer);
    for (const b of this.#breakers.values()) b.shutdown();
    this.#breakers.clear();
  }
}

function isOriginFailure(err: unknown): boolean {
  return err instanceof FailedResponse || (err instanceof RelayError && countsAgainstOrigin(err));
}

function countsAgainstOrigin(err: RelayError): boolean {
  // Connection-level failures say the origin is unwell; TLS/certificate, policy and size problems do not.
  return retryClassOf(err.code) !== 'never' && err.code !== 'store_unavailable';
}
