import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, RelayError } from './errors.ts';
import type { ErrorCode } from './errors.ts';
import { problemBody, rawProblemResponse } from './problem.ts';

describe('problemBody', () => {
  it.each(Object.keys(ERROR_CATALOGUE) as ErrorCode[])('%s: type, title and status come from the catalogue', (code) => {
    expect(problemBody(code)).toEqual({ type: `urn:mtls-relay:problem:${code}`, title: ERROR_CATALOGUE[code].title, status: ERROR_CATALOGUE[code].status, code });
  });

  it('takes detail from a RelayError, and extra members after the standard ones', () => {
    const body = problemBody(new RelayError('invalid_body', 'name: required'), { index: 2 });
    expect(body).toEqual({ type: 'urn:mtls-relay:problem:invalid_body', title: ERROR_CATALOGUE.invalid_body.title, status: 400, detail: 'name: required', code: 'invalid_body', index: 2 });
    expect(Object.keys(body)).toEqual(['type', 'title', 'status', 'detail', 'code', 'index']);
  });
});

describe('rawProblemResponse', () => {
  it('is an HTTP/1.1 response that a real client reads: status, reason, headers, problem body, then close', async () => {
    const server = createServer((socket) => socket.end(rawProblemResponse('method_not_allowed', { Allow: 'GET, POST' })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(res.status).toBe(405);
      expect(res.statusText).toBe('Method Not Allowed');
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('allow')).toBe('GET, POST');
      expect(res.headers.get('connection')).toBe('close');
      expect(await res.json()).toEqual(problemBody('method_not_allowed'));
    } finally {
      server.close();
    }
  });
});
