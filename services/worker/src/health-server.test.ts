import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '@mtls-relay/shared/errors';
import { createLogger } from '@mtls-relay/shared/logging';
import { createHealthServer, listen } from './health-server.ts';

async function withServer(ready: boolean, fn: (url: string) => Promise<void>): Promise<void> {
  const server = createHealthServer({
    registry: new Registry(),
    logger: createLogger({ name: 'test', level: 'silent' }),
    isShuttingDown: () => false,
    checks: [{ name: 'redis', check: async () => ({ ok: ready }) }],
  });
  const port = await listen(server, 0, '127.0.0.1');
  expect(port).toBe((server.address() as AddressInfo).port);
  try {
    await fn(`http://127.0.0.1:${port}`);
  } finally {
    server.close();
  }
}

describe("the worker's health server", () => {
  it('answers unknown paths and methods with problem+json titled from the error catalogue', async () => {
    await withServer(true, async (url) => {
      const missing = await fetch(`${url}/nope`);
      expect(missing.status).toBe(404);
      expect(missing.headers.get('content-type')).toBe('application/problem+json');
      expect(await missing.json()).toEqual({ type: 'urn:mtls-relay:problem:not_found', title: ERROR_CATALOGUE.not_found.title, status: 404, code: 'not_found' });
      const post = await fetch(`${url}/readyz`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, HEAD');
      expect(await post.json()).toMatchObject({ title: ERROR_CATALOGUE.method_not_allowed.title, code: 'method_not_allowed' });
    });
  });

  it('/readyz reports each check, 200 when all pass and 503 when one fails', async () => {
    await withServer(true, async (url) => {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ready', shuttingDown: false, checks: [{ name: 'redis', ok: true }] });
    });
    await withServer(false, async (url) => {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'not ready', checks: [{ name: 'redis', ok: false }] });
    });
  });
});
