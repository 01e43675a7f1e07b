import { pino } from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';

/**
 * Paths pino blanks out wherever they appear in a log record. Secrets must never reach a log line:
 * credentials, the override header, certificate material and keys, tokens.
 */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers["lp-authorization-override"]',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["lp-authorization-override"]',
  'headers.cookie',
  '*.authorization',
  '*.privateKey',
  '*.private_key',
  '*.certificate',
  '*.secret',
  '*.secretId',
  '*.secret_id',
  '*.token',
  '*.clientToken',
  '*.client_token',
  '*.password',
  'privateKey',
  'private_key',
  'token',
  'secret',
];

export type { Logger } from 'pino';

export function createLogger(
  options: { name: string; level: string; base?: Record<string, unknown> },
  destination?: DestinationStream,
): Logger {
  const opts: LoggerOptions = {
    name: options.name,
    level: options.level,
    base: { service: options.name, pid: process.pid, ...options.base },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination === undefined ? pino(opts) : pino(opts, destination);
}

/** A safe summary of an error for logs: name, code and message, never a payload or a stack full of data. */
export function errorSummary(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const e = err as Error & { code?: unknown; kind?: unknown; status?: unknown };
  return { err: { name: e.name, message: e.message, code: e.code, kind: e.kind, status: e.status } };
}
