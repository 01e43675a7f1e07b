import type { Redis } from 'ioredis';
import { shardOfId } from '@mtls-relay/shared/forward-ids';
import type { Pointer } from '@mtls-relay/shared/forward-records';
import type { JobName, ReplyMessage } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';

/** Reads a finished job's outcome from Redis; null while the job is not finished (or is gone). */
export type FinalOutcome = (jobId: string, jobName: JobName) => Promise<ReplyMessage | null>;

/** Reads the records replies pointed at, several at once. */
export type PointedOutcomes = (pointers: readonly Pointer[]) => Promise<Map<string, ReplyMessage>>;

interface Waiting {
  readonly jobName: JobName;
  readonly since: number;
  resolve: (outcome: ReplyMessage | null) => void;
  timer: NodeJS.Timeout | undefined;
}

/** A wait older than this is checked against Redis every RECHECK_MS, in case its reply was lost. */
export const RECHECK_MS = 1_000;

/**
 * Delivers job outcomes to the requests waiting for them through ONE pub/sub subscription per process
 * (never a listener per request). Workers publish on this process's reply channel when forwards finish,
 * several replies in one message.
 *
 * The wait is registered before the job is enqueued, so a job that finishes at once is not missed. A reply can
 * still be lost (the subscription was down, or the worker died between recording and publishing): every wait
 * older than a second is checked against the recorded outcome once a second, and once more when it runs out.
 */
export class ResultWaiter {
  /** This process's reply channel (shard 0's with QUEUE_SHARDS). */
  readonly channel: string;
  /** One reply channel per shard: a shard's workers publish on its own, which lives in that shard's slot. */
  readonly channels: readonly string[];
  readonly #sharded: boolean;
  readonly #subscriber: Redis;
  readonly #final: FinalOutcome;
  readonly #pointed: PointedOutcomes | undefined;
  readonly #logger: Logger;
  readonly #waiting = new Map<string, Waiting>();
  #recheck: NodeJS.Timeout | undefined;

  /**
   * `channel`: one reply channel, or one per shard. `sharded`: sharded pub/sub (SSUBSCRIBE; a Redis Cluster), so
   * that a reply travels only within the node that holds its channel's slot. `pointed`: reads the forward records
   * that replies point at, one read per job for all of a message's pointers (without it, one view per forward).
   */
  constructor(
    subscriber: Redis,
    channel: string | readonly string[],
    final: FinalOutcome,
    logger: Logger,
    options: { sharded?: boolean; pointed?: PointedOutcomes } = {},
  ) {
    this.#subscriber = subscriber;
    this.channels = typeof channel === 'string' ? [channel] : channel;
    this.channel = this.channels[0] as string;
    this.#sharded = options.sharded === true;
    this.#final = final;
    this.#pointed = options.pointed;
    this.#logger = logger;
  }

  async start(): Promise<void> {
    const mine = new Set(this.channels);
    this.#subscriber.on(this.#sharded ? 'smessage' : 'message', (channel: string, text: string) => {
      if (mine.has(channel)) this.#onMessage(text);
    });
    this.#subscriber.on('ready', () => this.#recheckOlderThan(0));
    // One channel per call: a Cluster takes a sharded subscription per slot.
    for (const channel of this.channels) await (this.#sharded ? this.#subscriber.ssubscribe(channel) : this.#subscriber.subscribe(channel));
    this.#recheck = setInterval(() => this.#recheckOlderThan(RECHECK_MS), RECHECK_MS);
    this.#recheck.unref();
  }

  /** The reply channel for a job (its shard's). */
  channelFor(jobId: string): string {
    return this.channels[shardOfId(jobId, this.channels.length) ?? 0] as string;
  }

  get pending(): number {
    return this.#waiting.size;
  }

  /**
   * Registers interest in `jobId` (a job of `jobName`, whose outcome is read when a reply may have been lost).
   * Call before enqueueing; then `wait` for the outcome, or `cancel` when the job could not be enqueued.
   */
  register(jobId: string, jobName: JobName = 'forward'): { wait: (timeoutMs: number) => Promise<ReplyMessage | null>; cancel: () => void } {
    let resolve!: (outcome: ReplyMessage | null) => void;
    const promise = new Promise<ReplyMessage | null>((r) => {
      resolve = r;
    });
    const entry: Waiting = { jobName, since: Date.now(), resolve, timer: undefined };
    this.#waiting.set(jobId, entry);
    return {
      wait: (timeoutMs) => {
        // Already settled (the reply came first): no timer to leave behind.
        if (this.#waiting.get(jobId) === entry) entry.timer = setTimeout(() => void this.#expire(jobId), timeoutMs);
        return promise;
      },
      cancel: () => this.#settle(jobId, null),
    };
  }

  #settle(jobId: string, outcome: ReplyMessage | null): void {
    const entry = this.#waiting.get(jobId);
    if (entry === undefined) return;
    this.#waiting.delete(jobId);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.resolve(outcome);
  }

  #onMessage(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    const pointers: Pointer[] = [];
    for (const message of Array.isArray(parsed) ? (parsed as ReplyMessage[]) : [parsed as ReplyMessage]) {
      const entry = this.#waiting.get(message.id);
      if (entry === undefined) continue;
      if (message.ok && message.result === undefined) {
        // A pointer (the result was too large to inline, or several records went without their results): the outcome
        // is the record Redis kept.
        if (typeof message.job === 'string' && entry.jobName === 'forward' && this.#pointed !== undefined) {
          pointers.push(typeof message.g === 'string' ? { id: message.id, job: message.job, g: message.g } : { id: message.id, job: message.job });
        }
        else this.#readFinal(message.id, entry.jobName);
        continue;
      }
      this.#settle(message.id, message);
    }
    if (pointers.length > 0) this.#readPointed(pointers);
  }

  #readFinal(jobId: string, jobName: JobName): void {
    void this.#final(jobId, jobName)
      .then((outcome) => this.#settle(jobId, outcome))
      .catch(() => this.#settle(jobId, null));
  }

  #readPointed(pointers: Pointer[]): void {
    void (this.#pointed as PointedOutcomes)(pointers)
      .catch(() => new Map<string, ReplyMessage>())
      .then((found) => {
        for (const { id } of pointers) {
          const outcome = found.get(id);
          if (outcome !== undefined) this.#settle(id, outcome);
          // Not where the pointer said (or unreadable): the forward's whole view decides.
          else if (this.#waiting.has(id)) this.#readFinal(id, 'forward');
        }
      });
  }

  async #expire(jobId: string): Promise<void> {
    // A reply may have been lost: look at the recorded outcome once before giving up.
    const entry = this.#waiting.get(jobId);
    if (entry === undefined) return;
    const outcome = await this.#final(jobId, entry.jobName).catch(() => null);
    this.#settle(jobId, outcome);
  }

  #recheckOlderThan(ageMs: number): void {
    const now = Date.now();
    for (const [jobId, entry] of this.#waiting) {
      if (now - entry.since < ageMs) continue;
      void this.#final(jobId, entry.jobName)
        .then((outcome) => {
          if (outcome !== null) this.#settle(jobId, outcome);
        })
        .catch((err: unknown) => this.#logger.debug({ jobId, err: (err as Error).message }, 'recheck failed'));
    }
  }

  /** Ends every wait with no outcome (shutdown): callers answer 504 with the job's Location. */
  closeAll(): void {
    if (this.#recheck !== undefined) clearInterval(this.#recheck);
    for (const jobId of [...this.#waiting.keys()]) this.#settle(jobId, null);
  }
}
