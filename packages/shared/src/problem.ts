import { STATUS_CODES } from 'node:http';
import { ERROR_CATALOGUE, RelayError } from './errors.ts';
import type { ErrorCode, ErrorSpec } from './errors.ts';

/**
 * RFC 9457 problem+json bodies, built in one place so that every producer (the api's error handler, its raw
 * socket answers, the worker's health server) uses the catalogue's title and status for a code.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * The body for a catalogue error: `type`, `title` and `status` from the catalogue, `detail` when given a
 * RelayError, then `code`, then `members` (for example `jobId`, or a RelayError's `extra`).
 */
export function problemBody(error: RelayError | ErrorCode, members: Record<string, unknown> = {}): Record<string, unknown> {
  const code = error instanceof RelayError ? error.code : error;
  const spec: ErrorSpec = ERROR_CATALOGUE[code];
  return {
    type: `urn:mtls-relay:problem:${code}`,
    title: spec.title,
    status: spec.status,
    ...(error instanceof RelayError ? { detail: error.detail } : {}),
    code,
    ...members,
  };
}

/**
 * A whole HTTP/1.1 problem response for a socket the HTTP server does not answer itself (requests Node's
 * parser refused, CONNECT); it announces `Connection: close`.
 */
export function rawProblemResponse(code: ErrorCode, headers: Record<string, string> = {}): string {
  const body = JSON.stringify(problemBody(code));
  const { status } = ERROR_CATALOGUE[code];
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    `Content-Type: ${PROBLEM_CONTENT_TYPE}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}
