/**
 * A counting semaphore: at most `limit` tasks run at once, the rest wait in arrival order. Bounds the forwards
 * one worker process sends at once over all the batch jobs it holds (WORKER_CONCURRENCY).
 */
export class Limiter {
  readonly limit: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running += 1;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      // The slot passes straight to the next task, so `running` never dips below the limit while tasks wait.
      if (next === undefined) this.#running -= 1;
      else next();
    }
  }
}
