import type { KeyRing } from '@mtls-relay/shared/crypto';
import { RelayError } from '@mtls-relay/shared/errors';
import { forwardIdOf, newBatchId } from '@mtls-relay/shared/forward-ids';
import { MAX_BATCH_FORWARDS } from '@mtls-relay/shared/jobs';
import { sealBatchRequests, sealRequest } from '@mtls-relay/shared/sealed-parts';
import type { ForwardBatch, ForwardEntry, ForwardMethod, HeaderList, ReplyMessage } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';
import { errorSummary } from '@mtls-relay/shared/logging';
import { IDEMPOTENCY_TTL_SECONDS } from './idempotency.ts';
import type { IdempotencyClaim, IdempotencyKeys } from './idempotency.ts';
import { EnqueueError } from './queue.ts';
import type { JobQueues } from './queue.ts';
import type { ResultWaiter } from './waiter.ts';

/** A validated forward request, in clear: the dispatcher seals it once it knows the forward's id. */
export interface ForwardRequest {
  accountId: string;
  serviceName: string;
  /** Origin and path of the target URL as the caller sent it; the query goes sealed. */
  url: string;
  query: string;
  method: ForwardMethod;
  requireCertificate: boolean;
  idempotency?: { key: string; fingerprint: string };
  requestId: string;
  headers: HeaderList;
  body: Buffer;
  /** Register a wait for the outcome (a synchronous caller, or Prefer: wait=N). */
  wantsReply: boolean;
}

/** What became of a submitted forward. */
export type Admission =
  | { kind: 'accepted'; id: string; wait: (timeoutMs: number) => Promise<ReplyMessage | null>; cancel: () => void }
  | { kind: 'replay'; earlier: IdempotencyClaim };

export interface DispatchSettings {
  forwardAttempts: number;
  resultTtlSeconds: number;
  /** A batch closes at this many bytes of sealed payload (the first forward always fits). */
  maxBatchBytes: number;
  /** Batch adds in flight at once; more forwards wait for the next batch. */
  maxInFlight: number;
  /** How long a forward may wait for its batch (REDIS_COMMAND_TIMEOUT_MS) before it is answered 503. */
  admissionMs: number;
  /** Forwards that may wait for a batch at once; more are answered 503 at once. */
  maxPending: number;
  /**
   * Seal a batch's requests in one piece (default), or each forward's on its own, the format that workers of
   * earlier versions read (FORWARD_REQUEST_SEALING=forward, while they still run).
   */
  sealRequestsPerBatch?: boolean;
}

interface Pending {
  request: ForwardRequest;
  bytes: number;
  /** Not committed by then (Redis stalled): answered 503 before anything is sent for it. */
  deadline: number;
  resolve: (a: Admission) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for forwards: requests that reach this process in the same turn of the event loop, or while the
 * previous adds are in flight, go to Redis as ONE BullMQ job. Nothing waits for a batch to fill: a lone request
 * is added on the next turn (setImmediate), so it gains the cheaper path and loses nothing. Keyed requests claim
 * their Idempotency-Keys in one pipelined round trip before the add.
 */
export class ForwardDispatcher {
  readonly #ring: KeyRing;
  readonly #queues: JobQueues;
  readonly #waiter: ResultWaiter;
  readonly #idempotency: IdempotencyKeys;
  readonly #settings: DispatchSettings;
  readonly #logger: Logger;
  #pending: Pending[] = [];
  #scheduled = false;
  #inFlight = 0;
  readonly #onBatch: ((forwards: number) => void) | undefined;

  constructor(
    deps: { ring: KeyRing; queues: JobQueues; waiter: ResultWaiter; idempotency: IdempotencyKeys; logger: Logger; onBatch?: (forwards: number) => void },
    settings: DispatchSettings,
  ) {
    this.#onBatch = deps.onBatch;
    this.#ring = deps.ring;
    this.#queues = deps.queues;
    this.#waiter = deps.waiter;
    this.#idempotency = deps.idempotency;
    this.#logger = deps.logger;
    this.#settings = settings;
  }

  submit(request: ForwardRequest): Promise<Admission> {
    if (this.#pending.length >= this.#settings.maxPending) {
      return Promise.reject(new RelayError('queue_unavailable', 'too many requests are waiting for the job queue (Redis); nothing was enqueued', { retryAfter: 1 }));
    }
    return new Promise<Admission>((resolve, reject) => {
      this.#pending.push({ request, bytes: request.body.length + 1024, deadline: Date.now() + this.#settings.admissionMs, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#pending.length === 0 || this.#inFlight >= this.#settings.maxInFlight) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      while (this.#pending.length > 0 && this.#inFlight < this.#settings.maxInFlight) {
        const batch = this.#take();
        this.#inFlight += 1;
        void this.#commitOrReject(batch).finally(() => {
          this.#inFlight -= 1;
          this.#schedule();
        });
      }
    });
  }

  /** The next batch: in arrival order, up to the count and byte limits (one forward always). */
  #take(): Pending[] {
    // Forwards that waited past their deadline (Redis stalled under the previous batches) are refused first:
    // nothing has been written for them, so "nothing was enqueued" is true.
    const now = Date.now();
    const expired = this.#pending.filter((p) => p.deadline < now);
    if (expired.length > 0) {
      this.#pending = this.#pending.filter((p) => p.deadline >= now);
      for (const p of expired) p.reject(new RelayError('queue_unavailable', 'the job queue (Redis) did not take requests in time; nothing was enqueued', { retryAfter: 1 }));
    }
    let bytes = 0;
    let n = 0;
    while (n < this.#pending.length && n < MAX_BATCH_FORWARDS) {
      const next = this.#pending[n] as Pending;
      if (n > 0 && bytes + next.bytes > this.#settings.maxBatchBytes) break;
      bytes += next.bytes;
      n += 1;
    }
    return this.#pending.splice(0, n);
  }

  /** #commit, and whatever it throws unexpectedly answers every forward of the batch not answered yet. */
  async #commitOrReject(items: Pending[]): Promise<void> {
    const settled = new Set<Pending>();
    const tracked = items.map((item) => ({
      ...item,
      resolve: (a: Admission) => {
        settled.add(item);
        item.resolve(a);
      },
      reject: (e: unknown) => {
        settled.add(item);
        item.reject(e);
      },
    }));
    try {
      await this.#commit(tracked);
    } catch (err) {
      this.#logger.error({ forwards: items.length, ...errorSummary(err) }, 'forward batch failed unexpectedly');
      for (const item of items) if (!settled.has(item)) item.reject(new RelayError('internal', 'the request could not be enqueued', { cause: err }));
    }
  }

  /**
   * With QUEUE_SHARDS, the batch goes to the next shard in turn; if that shard definitely did not take it
   * (nothing was written), it is tried on the next one under a new id (`tried` counts the shards tried).
   */
  async #commit(items: Pending[], tried = 0): Promise<void> {
    const shard = this.#queues.shardCount > 1 ? this.#queues.nextShard() : undefined;
    const batchId = newBatchId(shard);
    const ids = items.map((_, i) => forwardIdOf(batchId, i));
    const now = Date.now();
    let admitted = items.map((item, i) => ({ item, id: ids[i] as string }));

    // Idempotency-Keys first: a key claimed earlier answers with the earlier request instead.
    const keyed = admitted.filter((a) => a.item.request.idempotency !== undefined);
    const claimed = new Set<string>();
    if (keyed.length > 0) {
      let earlier: Array<IdempotencyClaim | null | RelayError>;
      try {
        earlier = await this.#idempotency.claimMany(
          keyed.map((a) => {
            const idem = a.item.request.idempotency as { key: string; fingerprint: string };
            return { accountId: a.item.request.accountId, key: idem.key, claim: { jobId: a.id, fingerprint: idem.fingerprint, claimedAt: now } };
          }),
        );
      } catch (err) {
        for (const a of keyed) a.item.reject(err);
        admitted = admitted.filter((a) => a.item.request.idempotency === undefined);
        earlier = [];
      }
      keyed.forEach((a, i) => {
        const e = earlier[i];
        if (e === null) claimed.add(a.id);
        // A Cluster slot that did not answer fails its own claims only.
        else if (e instanceof RelayError) a.item.reject(e);
        else if (e !== undefined) a.item.resolve({ kind: 'replay', earlier: e });
      });
      admitted = admitted.filter((a) => a.item.request.idempotency === undefined || claimed.has(a.id));
    }
    if (admitted.length === 0) return;

    const waits = admitted.map((a) => (a.item.request.wantsReply ? this.#waiter.register(a.id) : undefined));
    const perBatch = this.#settings.sealRequestsPerBatch !== false;
    const batch: ForwardBatch = {
      v: 2,
      forwards: admitted.map((a) => this.#entry(a.id, a.item.request, now, !perBatch)),
      // The batch's requests in one sealed piece: one cipher operation here and one in the worker per batch.
      ...(perBatch ? { requests: sealBatchRequests(this.#ring, batchId, admitted.map((a) => ({ id: a.id, parts: a.item.request }))) } : {}),
      attemptsBefore: 0,
      maxAttempts: this.#settings.forwardAttempts,
      keepSeconds: Math.max(this.#settings.resultTtlSeconds, claimed.size > 0 ? IDEMPOTENCY_TTL_SECONDS : 0),
      retry: false,
    };
    try {
      await this.#queues.addForwardBatch(batchId, batch);
    } catch (err) {
      for (const w of waits) w?.cancel();
      const definite = err instanceof EnqueueError && err.definite;
      if (shard !== undefined) this.#queues.markDown(shard);
      if (definite) {
        await Promise.all(admitted.filter((a) => claimed.has(a.id)).map((a) => this.#release(a.item.request, a.id)));
        if (shard !== undefined && tried + 1 < this.#queues.shardCount && this.#queues.availableShards() > 0) {
          this.#logger.warn({ batch: batchId, shard, forwards: admitted.length, ...errorSummary(err) }, 'shard did not take the forward batch: trying the next shard');
          await this.#commit(admitted.map((a) => a.item), tried + 1);
          return;
        }
      }
      this.#logger.warn({ batch: batchId, forwards: admitted.length, definite, ...errorSummary(err) }, 'forward batch not confirmed by Redis');
      admitted.forEach((a) => {
        a.item.reject(
          definite
            ? new RelayError('queue_unavailable', 'the job queue (Redis) is unavailable; nothing was enqueued', { cause: err, retryAfter: 1 })
            : // No Retry-After: clients that retry any 503 carrying one would send a POST twice. Poll Location instead.
              new RelayError('enqueue_uncertain', `Redis did not confirm the enqueue in time; the request may still run: poll /mtls/jobs/${a.id}`, {
                cause: err,
                extra: { jobId: a.id },
              }),
        );
      });
      return;
    }
    this.#onBatch?.(admitted.length);
    admitted.forEach((a, i) => {
      const w = waits[i];
      a.item.resolve({
        kind: 'accepted',
        id: a.id,
        wait: w === undefined ? async () => null : w.wait,
        cancel: w === undefined ? () => undefined : w.cancel,
      });
    });
  }

  #entry(id: string, r: ForwardRequest, now: number, sealOwn: boolean): ForwardEntry {
    return {
      id,
      accountId: r.accountId,
      serviceName: r.serviceName,
      url: r.url,
      method: r.method,
      requireCertificate: r.requireCertificate,
      keyed: r.idempotency !== undefined,
      requestId: r.requestId,
      ...(r.wantsReply ? { replyTo: this.#waiter.channelFor(id) } : {}),
      ...(sealOwn ? { request: sealRequest(this.#ring, id, { headers: r.headers, query: r.query, body: r.body }) } : {}),
      enqueuedAt: now,
    };
  }

  async #release(r: ForwardRequest, id: string): Promise<void> {
    if (r.idempotency !== undefined) await this.#idempotency.release(r.accountId, r.idempotency.key, id);
  }
}
