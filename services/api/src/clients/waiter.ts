import type { Redis } from 'ioredis';
import type { JobName, ReplyMessage } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';

/** Reads a finished job's outcome from its queue; null while the job is not finished (or is gone). */
export type FinalOutcome = (jobId: string, jobName: JobName) => Promise<ReplyMessage | null>;

interface Waiting {
  readonly jobName: JobName;
  resolve: (outcome: ReplyMessage | null) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Delivers job outcomes to the requests waiting for them through ONE pub/sub subscription per process
 * (never a listener per request). Workers publish on this process's reply channel when a job finishes.
 *
 * The wait is registered before the job is enqueued, so a job that finishes at once is not missed. Messages
 * lost while the subscription was down are made up for by reading the job's state when the connection comes
 * back and once more when a wait runs out.
 */
export class ResultWaiter {
  readonly channel: string;
  readonly #subscriber: Redis;
  readonly #final: FinalOutcome;
  readonly #logger: Logger;
  readonly #waiting = new Map<string, Waiting>();

  constructor(subscriber: Redis, channel: string, final: FinalOutcome, logger: Logger) {
    this.#subscriber = subscriber;
    this.channel = channel;
    this.#final = final;
    this.#logger = logger;
  }

  async start(): Promise<void> {
    this.#subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.channel) this.#onMessage(text);
    });
    this.#subscriber.on('ready', () => this.#recheckAll());
    await this.#subscriber.subscribe(this.channel);
  }

  get pending(): number {
    return this.#waiting.size;
  }

  /**
   * Registers interest in `jobId` (a job of `jobName`, whose queue is read when a reply may have been lost).
   * Call before enqueueing; then `wait` for the outcome, or `cancel` when the job could not be enqueued.
   */
  register(jobId: string, jobName: JobName = 'forward'): { wait: (timeoutMs: number) => Promise<ReplyMessage | null>; cancel: () => void } {
    let resolve!: (outcome: ReplyMessage | null) => void;
    const promise = new Promise<ReplyMessage | null>((r) => {
      resolve = r;
    });
    const entry: Waiting = { jobName, resolve, timer: undefined };
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

  /** Waits for a job that was enqueued earlier (an async job polled with wait=N). */
  async waitFor(jobId: string, timeoutMs: number, jobName: JobName = 'forward'): Promise<ReplyMessage | null> {
    const handle = this.register(jobId, jobName);
    const already = await this.#final(jobId, jobName).catch(() => null);
    if (already !== null) {
      this.#settle(jobId, already);
    }
    return handle.wait(timeoutMs);
  }

  #settle(jobId: string, outcome: ReplyMessage | null): void {
    const entry = this.#waiting.get(jobId);
    if (entry === undefined) return;
    this.#waiting.delete(jobId);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.resolve(outcome);
  }

  #onMessage(text: string): void {
    let message: ReplyMessage;
    try {
      message = JSON.parse(text) as ReplyMessage;
    } catch {
      return;
    }
    const entry = this.#waiting.get(message.id);
    if (entry === undefined) return;
    if (message.ok && message.result === undefined) {
      // The result was too large to inline: read it from the job.
      void this.#final(message.id, entry.jobName)
        .then((outcome) => this.#settle(message.id, outcome))
        .catch(() => this.#settle(message.id, null));
      return;
    }
    this.#settle(message.id, message);
  }

  async #expire(jobId: string): Promise<void> {
    // A reply may have been lost (subscriber reconnect): look at the job itself once before giving up.
    const entry = this.#waiting.get(jobId);
    if (entry === undefined) return;
    const outcome = await this.#final(jobId, entry.jobName).catch(() => null);
    this.#settle(jobId, outcome);
  }

  #recheckAll(): void {
    for (const [jobId, entry] of this.#waiting) {
      void this.#final(jobId, entry.jobName)
        .then((outcome) => {
          if (outcome !== null) this.#settle(jobId, outcome);
        })
        .catch((err: unknown) => this.#logger.debug({ jobId, err: (err as Error).message }, 'recheck failed'));
    }
  }

  /** Ends every wait with no outcome (shutdown): callers answer 504 with the job's Location. */
  closeAll(): void {
    for (const jobId of [...this.#waiting.keys()]) this.#settle(jobId, null);
  }
}
