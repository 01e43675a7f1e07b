import { describe, expect, it } from 'vitest';
import { runReadiness } from './readiness.ts';

describe('runReadiness', () => {
  it('is ready when every check passes and the process is not shutting down', async () => {
    const checks = [
      { name: 'a', check: async () => ({ ok: true }) },
      { name: 'b', check: async () => ({ ok: true, detail: 'fine' }) },
    ];
    expect(await runReadiness(checks, () => false)).toEqual({
      status: 'ready',
      shuttingDown: false,
      checks: [{ name: 'a', ok: true }, { name: 'b', ok: true, detail: 'fine' }],
    });
    expect(await runReadiness(checks, () => true)).toMatchObject({ status: 'not ready', shuttingDown: true });
  });

  it('a failing, throwing or late check makes it not ready; a thrown message is not shown, only the error name', async () => {
    const started = Date.now();
    const report = await runReadiness(
      [
        { name: 'fails', check: async () => ({ ok: false, detail: 'maxmemory-policy' }) },
        { name: 'throws', check: async () => Promise.reject(new TypeError('redis://:secret@10.0.0.1 refused')) },
        { name: 'hangs', check: () => new Promise(() => undefined) },
        { name: 'passes', check: async () => ({ ok: true }) },
      ],
      () => false,
      200,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(report).toEqual({
      status: 'not ready',
      shuttingDown: false,
      checks: [
        { name: 'fails', ok: false, detail: 'maxmemory-policy' },
        { name: 'throws', ok: false, detail: 'TypeError' },
        { name: 'hangs', ok: false, detail: 'timeout' },
        { name: 'passes', ok: true },
      ],
    });
  });
});
