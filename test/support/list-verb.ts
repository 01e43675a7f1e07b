// Node's HTTP parser (llhttp) rejects the `LIST` method with 400 before any handler runs. This Transform sits
// between a client socket and an `http.Server`: it follows HTTP/1.1 request framing (Content-Length and chunked
// bodies) so it sees the request line of *every* request on a keep-alive connection, and rewrites
// `LIST /path HTTP/1.1` to `GET /path HTTP/1.1` plus a marker header carrying the original method.
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

/** Header added to rewritten requests; its value is the method the client sent. */
export const ORIGINAL_METHOD_HEADER = 'x-test-vault-original-method';

const CRLF = Buffer.from('\r\n');
const MAX_HEAD = 64 * 1024;

type State = 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailer' | 'raw';

export class ListVerbRewriter extends Transform {
  #buf: Buffer = Buffer.alloc(0);
  #state: State = 'head';
  #remaining = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#drain();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#buf.length > 0) this.push(this.#buf);
    callback();
  }

  #take(n: number): Buffer {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  #drain(): void {
    for (;;) {
      if (this.#buf.length === 0) return;
      switch (this.#state) {
        case 'raw':
          this.push(this.#take(this.#buf.length));
          return;
        case 'body':
        case 'chunk-data': {
          const n = Math.min(this.#remaining, this.#buf.length);
          this.push(this.#take(n));
          this.#remaining -= n;
          if (this.#remaining > 0) return;
          this.#state = this.#state === 'body' ? 'head' : 'chunk-size';
          break;
        }
        case 'head': {
          if (this.#buf.subarray(0, 2).equals(CRLF)) {
            this.push(this.#take(2)); // empty lines between requests are allowed
            break;
          }
          const end = this.#buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (this.#buf.length > MAX_HEAD) this.#state = 'raw'; // let the HTTP parser reject it
            return;
          }
          this.push(this.#rewriteHead(this.#take(end + 4).toString('latin1')));
          break;
        }
        case 'chunk-size': {
          const eol = this.#buf.indexOf(CRLF);
          if (eol < 0) return;
          const line = this.#take(eol + 2);
          this.push(line);
          const size = Number.parseInt(line.toString('latin1').split(';')[0] ?? '', 16);
          if (Number.isNaN(size)) this.#state = 'raw';
          else if (size === 0) this.#state = 'trailer';
          else {
            this.#state = 'chunk-data';
            this.#remaining = size + 2; // chunk data and its CRLF
          }
          break;
        }
        case 'trailer': {
          const eol = this.#buf.indexOf(CRLF);
          if (eol < 0) return;
          this.push(this.#take(eol + 2));
          if (eol === 0) this.#state = 'head';
          break;
        }
      }
    }
  }

  /** Rewrites the request line if needed and decides how the body that follows is framed. */
  #rewriteHead(head: string): Buffer {
    const lines = head.split('\r\n');
    const requestLine = lines[0] ?? '';
    let contentLength = 0;
    let chunked = false;
    let upgrade = false;
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') contentLength = Number(value);
      else if (name === 'transfer-encoding') chunked = value.split(',').some((v) => v.trim() === 'chunked');
      else if (name === 'upgrade') upgrade = true;
    }
    const method = requestLine.slice(0, requestLine.indexOf(' '));
    if (upgrade || method === 'CONNECT') this.#state = 'raw';
    else if (chunked) this.#state = 'chunk-size';
    else if (Number.isInteger(contentLength) && contentLength > 0) {
      this.#state = 'body';
      this.#remaining = contentLength;
    } else if (!Number.isInteger(contentLength)) this.#state = 'raw';
    else this.#state = 'head';
    if (method !== 'LIST') return Buffer.from(head, 'latin1');
    const rewritten = [`GET${requestLine.slice(method.length)}`, `${ORIGINAL_METHOD_HEADER}: LIST`, ...lines.slice(1)];
    return Buffer.from(rewritten.join('\r\n'), 'latin1');
  }
}
