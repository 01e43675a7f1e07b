import { writeSync } from 'node:fs';
import { pino } from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';

/**
 * Field names whose values never reach a log line, wherever they appear in a logged object (compared
 * case-insensitively): credentials and the override header, cookies, tokens, keys, certificates, signatures,
 * and request or response bodies.
 *
 * Pino's path-based `redact` costs about 6 µs per wildcard path on every line (over 200 µs per line for the
 * list this replaces); this key-based walk costs in proportion to the size of what is logged instead.
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'lp-authorization-override',
  'override',
  'cookie',
  'set-cookie',
  'x-vault-token',
  'token',
  'clienttoken',
  'client_token',
  'jwt',
  'secret',
  'secretid',
  'secret_id',
  'password',
  'passphrase',
  'pkcs12',
  'privatekey',
  'private_key',
  'keypem',
  'pem',
  'certificate',
  'masterkey',
  'master_key',
  'vault_token',
  'vault_secret_id',
  'signature',
  'oauth_signature',
  'consumersecret',
  'consumer_secret',
  'body',
]);

const CENSOR = '[redacted]';
const MAX_DEPTH = 6;

/** A copy of `value` with every SECRET_KEYS field censored; `value` itself when there is nothing to censor. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const scrubbed = redactSecrets(value[i], depth + 1);
      if (scrubbed !== value[i]) (out ??= [...value])[i] = scrubbed;
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  const source = value as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const v = source[key];
    const next = SECRET_KEYS.has(key.toLowerCase()) ? CENSOR : redactSecrets(v, depth + 1);
    if (next !== v) {
      // Errors keep what their serializer needs (name, message, stack are not own enumerable keys).
      out ??= value instanceof Error ? { type: value.name, message: value.message, stack: value.stack, ...source } : { ...source };
      out[key] = next;
    }
  }
  return out ?? value;
}

export type { Logger } from 'pino';

export function createLogger(
  options: { name: string; level: string; base?: Record<string, unknown> },
  destination?: DestinationStream,
): Logger {
  const opts: LoggerOptions = {
    name: options.name,
    level: options.level,
    base: { service: options.name, pid: process.pid, ...options.base },
    timestamp: isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      bindings: (bindings) => redactSecrets(bindings) as Record<string, unknown>,
      log: (object) => redactSecrets(object) as Record<string, unknown>,
    },
  };
  return pino(opts, destination ?? bufferedStdout());
}

let stampedAt = -1;
let stamp = '';

/**
 * Pino's ISO timestamp (`,"time":"2026-12-07T03:40:00.123Z"`), formatted once per millisecond: `toISOString` costs
 * about 2 µs, more than the rest of a line, and a busy process writes many lines within one millisecond.
 */
export function isoTime(now: number = Date.now()): string {
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

/**
 * Standard output with buffered writes: lines are written when 16 KiB have gathered or every 100 ms, not one
 * write(2) per line (at a few thousand forwards a second, one write per line cost the services about a tenth
 * of their CPU), and whatever is left is written when the process exits.
 */
function bufferedStdout(): DestinationStream {
  // One buffer for every logger of the process, so that their lines keep their order.
  return (stdout ??= new LineBuffer(1));
}

let stdout: LineBuffer | undefined;

const FLUSH_AT = 16 * 1024;
const FLUSH_EVERY_MS = 100;
/** How long a write that finds the pipe full (EAGAIN: a non-blocking descriptor whose reader lags) waits to retry. */
const BUSY_WAIT_MS = 10;

/**
 * A log destination that copies each line into one reused buffer and writes the buffer synchronously.
 *
 * Written here rather than using pino's own destination (sonic-boom): in its string mode it measures the byte
 * length of everything still unwritten on every line, which flattens and scans the whole pending string each
 * time (about 4.5 µs per 150-byte line with a 4 KiB buffer, more with a larger one), and its buffer mode only
 * takes Buffers, which pino does not give it. Copying into a buffer costs about 0.7 µs per line.
 *
 * Synchronous writes, as pino's default destination makes: the order of lines is kept, nothing is held in memory
 * beyond one buffer, and a reader that stops reading slows the process rather than growing its memory.
 */
export class LineBuffer implements DestinationStream {
  readonly #fd: number;
  #buf = Buffer.allocUnsafe(4 * FLUSH_AT);
  #len = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(fd: number) {
    this.#fd = fd;
    this.#timer = setInterval(() => this.flushSync(), FLUSH_EVERY_MS).unref();
    process.once('exit', () => this.flushSync());
  }

  write(line: string): void {
    // A UTF-8 encoding is at most three bytes per UTF-16 unit.
    const most = line.length * 3;
    if (this.#len + most > this.#buf.length) {
      this.flushSync();
      if (most > this.#buf.length) {
        this.#writeAll(Buffer.from(line));
        return;
      }
    }
    this.#len += this.#buf.write(line, this.#len);
    if (this.#len >= FLUSH_AT) this.flushSync();
  }

  /** Writes what is gathered. */
  flushSync(): void {
    if (this.#len === 0) return;
    const n = this.#len;
    this.#len = 0;
    this.#writeAll(this.#buf.subarray(0, n));
  }

  /** `logger.flush(cb)`: writes what is gathered, then calls back. */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  /** Stops the periodic writes and writes what is gathered (tests). */
  end(): void {
    clearInterval(this.#timer);
    this.flushSync();
  }

  #writeAll(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      try {
        off += writeSync(this.#fd, bytes, off, bytes.length - off);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Anything else (EPIPE: nobody reads the output any more) loses these lines rather than failing the
        // request that logged one.
        if (code !== 'EAGAIN' && code !== 'EBUSY') return;
        Atomics.wait(BUSY_WAIT, 0, 0, BUSY_WAIT_MS);
      }
    }
  }
}

const BUSY_WAIT = new Int32Array(new SharedArrayBuffer(4));

/** A safe summary of an error for logs: name, code and message, never a payload or a stack full of data. */
export function errorSummary(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const e = err as Error & { code?: unknown; kind?: unknown; status?: unknown };
  return { err: { name: e.name, message: e.message, code: e.code, kind: e.kind, status: e.status } };
}
