import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { RelayError } from '@mtls-relay/shared/errors';
import type { Logger } from '@mtls-relay/shared/logging';
import { retryClassOf } from './transport-errors.ts';

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

/** Successes remembered across all origins that have no breaker: about 16 s of calls at 1,000 calls/s. */
export const RECENT_SUCCESSES = 16_384;

/** FNV-1a, 32 bits: an origin's key in the ring of recent successes (a collision only adds a few successes). */
function originHash(origin: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < origin.length; i++) h = Math.imul(h ^ origin.charCodeAt(i), 0x01000193);
  return h | 0;
}

/**
 * The most recent successful calls to origins that had no breaker, across every origin, in a fixed ring: two
 * typed arrays whose size does not depend on how many origins there are (about 200 KB). When an origin fails for
 * the first time, its successes still in the window are read from here, so that its new breaker's error rate is
 * computed over every call of the window, not only those since the failure.
 */
class RecentSuccesses {
  readonly #hashes = new Int32Array(RECENT_SUCCESSES);
  readonly #times = new Float64Array(RECENT_SUCCESSES);
  #next = 0;

  record(origin: string, now: number): void {
    this.#hashes[this.#next] = originHash(origin);
    this.#times[this.#next] = now;
    this.#next = (this.#next + 1) % RECENT_SUCCESSES;
  }

  /** Successes of `origin` at or after `since` still in the ring. */
  count(origin: string, since: number): number {
    const h = originHash(origin);
    let n = 0;
    for (let i = 0; i < RECENT_SUCCESSES; i++) if (this.#hashes[i] === h && (this.#times[i] as number) >= since && this.#times[i] !== 0) n++;
    return n;
  }
}

/**
 * Circuit breakers per target origin (opossum), in a bounded LRU map. Counted as failures: transport errors
 * that say something about the origin (refused, timed out, reset) and 5xx answers. Not counted: 4xx answers,
 * TLS and certificate problems of one client certificate, policy refusals. opossum's own timeout is off:
 * every request has its own AbortSignal, so one slow call never aborts the others.
 *
 * A breaker is made for an origin at its first counted failure, and dropped again once it has been closed for
 * a whole window with no failure in it: an origin with no breaker is healthy, and its calls go straight
 * through. So a worker that talks to many healthy origins keeps no per-origin state for them (an opossum
 * breaker is about 7 KB of heap). A new breaker starts with the origin's calls still under way counted as
 * calls of its window, as opossum counts a call when it starts, and with its successful calls of the last window
 * (from a fixed-size ring of recent successes shared by all origins), so that its error rate covers every call
 * of the window. Those earlier successes sit in the breaker's newest bucket: they leave its window up to one
 * window later than they would have (which errs towards staying closed). A failure of a call that outlives its
 * breaker (dropped meanwhile) starts a new one.
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
  /** Calls under way to origins that have no breaker, by origin. */
  readonly #inFlight = new Map<string, number>();
  /** When each breaker last closed (after being open); breakers never opened are absent. */
  readonly #closedAt = new WeakMap<CircuitBreaker<Parameters<Action>, unknown>, number>();
  readonly #recent = new RecentSuccesses();

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
    // opossum's Status takes starting counts (`stats`) from the options it is given; its typings omit it here.
    const earlier = this.#recent.count(origin, Date.now() - this.#settings.rollingWindowMs);
    const underWay = { stats: { fires: (this.#inFlight.get(origin) ?? 0) + earlier, successes: earlier } } as object;
    const breaker = new CircuitBreaker<Parameters<Action>, unknown>(action, {
      ...underWay,
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
    breaker.on('close', () => {
      this.#closedAt.set(breaker, Date.now());
      this.#logger.info({ origin }, 'circuit closed');
    });
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
    const closedBefore = Date.now() - this.#settings.rollingWindowMs;
    for (const [origin, b] of this.#breakers) {
      if (b.closed && (this.#closedAt.get(b) ?? 0) <= closedBefore && b.stats.failures === 0) {
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
    if (breaker === undefined) return this.#direct(origin, send, isFailure);
    try {
      return (await breaker.fire(async () => {
        const result = await send();
        if (isFailure(result)) throw new FailedResponse(result);
        return result;
      })) as T;
    } catch (err) {
      // A shut-down breaker (dropped while this call ran) no longer counts anything.
      if (breaker.isShutdown && isOriginFailure(err)) await this.#recordFailure(origin, err);
      if (err instanceof FailedResponse) return err.response as T;
      if ((err as { code?: unknown }).code === 'EOPENBREAKER') {
        throw new RelayError('circuit_open', `calls to ${origin} are paused after repeated failures`, {
          retryAfter: Math.ceil(this.#settings.resetTimeoutMs / 1000),
        });
      }
      throw err;
    }
  }

  /** A call to an origin with no breaker: straight through, its failure (if any) starts the breaker. */
  async #direct<T>(origin: string, send: () => Promise<T>, isFailure: (result: T) => boolean): Promise<T> {
    this.#inFlight.set(origin, (this.#inFlight.get(origin) ?? 0) + 1);
    const done = (): void => {
      const n = (this.#inFlight.get(origin) ?? 1) - 1;
      if (n === 0) this.#inFlight.delete(origin);
      else this.#inFlight.set(origin, n);
    };
    let result: T;
    try {
      result = await send();
    } catch (err) {
      done();
      if (isOriginFailure(err)) await this.#recordFailure(origin, err);
      throw err;
    }
    done();
    if (isFailure(result)) await this.#recordFailure(origin, new FailedResponse(result));
    else this.#recent.record(origin, Date.now());
    return result;
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
