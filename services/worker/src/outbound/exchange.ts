import type { Dispatcher } from 'undici';
import { RelayError } from '@mtls-relay/shared/errors';
import type { HeaderList } from '@mtls-relay/shared/jobs';

/** A target's answer, read whole. */
export interface TargetResponse {
  status: number;
  headers: HeaderList;
  body: Buffer;
}

/**
 * One request to a target through undici's dispatch API: the answer's status, headers and body bytes, collected as
 * they arrive. undici's request() wraps the same exchange in an async resource, a Readable stream for the body and
 * the stream's consumer; a relay reads every body whole into memory (bounded by the agents' maxResponseSize, which
 * undici enforces on dispatch too), so it keeps the chunks itself. `fail` learns whether the target had answered:
 * errors before an answer may be a TLS alert the connector saw.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly #limit: number;
  readonly #signal: AbortSignal;
  readonly #resolve: (response: TargetResponse) => void;
  readonly #fail: (err: unknown, answered: boolean) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #headers: HeaderList = [];
  #chunks: Buffer[] = [];
  #answered = false;
  #settled = false;

  constructor(limit: number, signal: AbortSignal, resolve: (response: TargetResponse) => void, fail: (err: unknown, answered: boolean) => void) {
    this.#limit = limit;
    this.#signal = signal;
    this.#resolve = resolve;
    this.#fail = fail;
    // The whole-attempt deadline: aborted at any stage, the exchange fails with the signal's reason.
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  readonly #onAbort = (): void => {
    const reason = this.#signal.reason as Error;
    if (this.#controller !== undefined) this.#controller.abort(reason);
    this.#settle(reason);
  };

  #settle(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#signal.removeEventListener('abort', this.#onAbort);
    if (err === undefined) {
      const body = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
      this.#resolve({ status: this.#status, headers: this.#headers, body });
    } else this.#fail(err, this.#answered);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#signal.aborted) controller.abort(this.#signal.reason as Error);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx answers are interim: the final one follows.
    if (statusCode < 200 || this.#settled) return;
    this.#answered = true;
    const declared = Number(headers['content-length']);
    if (Number.isFinite(declared) && declared > this.#limit) {
      const err = new RelayError('response_too_large', `the response declares ${declared} bytes; the limit is ${this.#limit}`);
      controller.abort(err);
      this.#settle(err);
      return;
    }
    this.#status = statusCode;
    this.#headers = flattenHeaders(headers);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#settled) this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.#settle(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#settle(err);
  }
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): HeaderList {
  const out: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, value]);
  }
  return out;
}
