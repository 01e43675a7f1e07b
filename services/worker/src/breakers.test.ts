import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { RelayError } from '@mtls-relay/shared/errors';
import { BreakerRegistry } from './breakers.ts';

const WINDOW_MS = 1_000;
const settings = { errorThresholdPercentage: 50, volumeThreshold: 3, resetTimeoutMs: 5_000, rollingWindowMs: WINDOW_MS, maxBreakers: 100 };
const is5xx = (status: number): boolean => status >= 500;

let registry: BreakerRegistry;
beforeEach(() => {
  vi.useFakeTimers();
  registry = new BreakerRegistry(settings, pino({ level: 'silent' }));
});
afterEach(() => {
  registry.shutdown();
  vi.useRealTimers();
});

describe('BreakerRegistry', () => {
  it('when origins only ever answer well, then no breaker is kept for them', async () => {
    for (let i = 0; i < 500; i++) expect(await registry.fire(`https://h${i}.example:443`, async () => 200, is5xx)).toBe(200);
    expect(registry.size).toBe(0);
  });

  it('when an origin keeps failing, then its breaker starts at the first failure and opens at the volume threshold without calling it again', async () => {
    const origin = 'https://down.example:443';
    let calls = 0;
    const send = async (): Promise<number> => {
      calls++;
      return 503;
    };
    expect(await registry.fire(origin, send, is5xx)).toBe(503);
    expect(registry.size).toBe(1);
    expect(registry.states().get(origin)).toBe('closed');
    expect(await registry.fire(origin, send, is5xx)).toBe(503);
    expect(await registry.fire(origin, send, is5xx)).toBe(503);
    expect(registry.states().get(origin)).toBe('open');
    await expect(registry.fire(origin, send, is5xx)).rejects.toMatchObject({ code: 'circuit_open' });
    expect(calls).toBe(3);
    // Another origin is not affected.
    expect(await registry.fire('https://up.example:443', async () => 200, is5xx)).toBe(200);
  });

  it('when transport errors that say nothing about the origin happen (a refused client certificate), then no breaker is made', async () => {
    const origin = 'https://picky.example:443';
    for (let i = 0; i < 5; i++) {
      await expect(registry.fire(origin, () => Promise.reject(new RelayError('client_certificate_rejected')), is5xx)).rejects.toBeInstanceOf(RelayError);
    }
    expect(registry.size).toBe(0);
    await expect(registry.fire(origin, () => Promise.reject(new RelayError('target_unreachable')), is5xx)).rejects.toMatchObject({ code: 'target_unreachable' });
    expect(registry.size).toBe(1);
  });

  it('when a few of many calls under way fail, then the calls under way count too and the breaker stays closed', async () => {
    const origin = 'https://busy.example:443';
    const answers: Array<(status: number) => void> = [];
    const calls = Array.from({ length: 10 }, () => registry.fire(origin, () => new Promise<number>((resolve) => answers.push(resolve)), is5xx));
    // Three fail first (as many as the volume threshold), then seven succeed.
    for (const [i, answer] of answers.entries()) {
      answer(i < 3 ? 503 : 200);
      await Promise.resolve();
    }
    expect((await Promise.all(calls)).filter((s) => s === 503)).toHaveLength(3);
    expect(registry.states().get(origin)).toBe('closed');
    expect(await registry.fire(origin, async () => 200, is5xx)).toBe(200);
  });

  it('when a call outlives its breaker (dropped meanwhile) and then fails, then the failure starts a new breaker', async () => {
    const origin = 'https://slow.example:443';
    expect(await registry.fire(origin, async () => 500, is5xx)).toBe(500);
    let answer!: (status: number) => void;
    const slow = registry.fire(origin, () => new Promise<number>((resolve) => (answer = resolve)), is5xx);
    vi.advanceTimersByTime(WINDOW_MS);
    expect(registry.size).toBe(0);
    answer(503);
    expect(await slow).toBe(503);
    expect(registry.states()).toEqual(new Map([[origin, 'closed']]));
  });

  it('when a breaker closes again after its trial, then it is kept for a whole window before it is dropped', async () => {
    const origin = 'https://flaky.example:443';
    for (let i = 0; i < 3; i++) await registry.fire(origin, async () => 503, is5xx);
    expect(registry.states().get(origin)).toBe('open');
    // Sweeps run once a window (every 1,000 ms here); the trial closes the breaker 200 ms before one.
    vi.advanceTimersByTime(settings.resetTimeoutMs + 800);
    expect(registry.states().get(origin)).toBe('half-open');
    expect(await registry.fire(origin, async () => 200, is5xx)).toBe(200);
    expect(registry.states().get(origin)).toBe('closed');
    vi.advanceTimersByTime(300);
    expect(registry.size).toBe(1);
    vi.advanceTimersByTime(WINDOW_MS);
    expect(registry.size).toBe(0);
  });

  it('when a whole window passes closed and without failures, then the breaker is dropped; an open one is kept', async () => {
    expect(await registry.fire('https://blip.example:443', async () => 500, is5xx)).toBe(500);
    for (let i = 0; i < 3; i++) await registry.fire('https://down.example:443', async () => 500, is5xx);
    expect(registry.states()).toEqual(new Map([['https://blip.example:443', 'closed'], ['https://down.example:443', 'open']]));
    vi.advanceTimersByTime(WINDOW_MS / 2);
    expect(registry.size).toBe(2);
    vi.advanceTimersByTime(WINDOW_MS / 2);
    expect(registry.states()).toEqual(new Map([['https://down.example:443', 'open']]));
  });

  it('when an origin answered well before its first failures in the same window, then those calls count and the breaker stays closed', async () => {
    // The issue 14 case: 14 successes, then a 503 answer (three attempts) and a dropped connection: 4 of 18, not 4 of 4.
    const origin = 'https://mostly-fine.example:443';
    for (let i = 0; i < 14; i++) expect(await registry.fire(origin, async () => 200, is5xx)).toBe(200);
    expect(registry.size).toBe(0);
    for (let i = 0; i < 3; i++) expect(await registry.fire(origin, async () => 503, is5xx)).toBe(503);
    await expect(registry.fire(origin, () => Promise.reject(new RelayError('target_connection_reset')), is5xx)).rejects.toMatchObject({ code: 'target_connection_reset' });
    expect(registry.states().get(origin)).toBe('closed');
    expect(await registry.fire(origin, async () => 200, is5xx)).toBe(200);
  });

  it('when the successes are older than the window, then they no longer count and failures open the breaker', async () => {
    const origin = 'https://was-fine.example:443';
    for (let i = 0; i < 14; i++) await registry.fire(origin, async () => 200, is5xx);
    vi.advanceTimersByTime(WINDOW_MS + 1);
    for (let i = 0; i < 3; i++) await registry.fire(origin, async () => 503, is5xx);
    expect(registry.states().get(origin)).toBe('open');
  });

  it("when other origins answered well, then their successes do not dilute a failing origin's rate", async () => {
    for (let i = 0; i < 50; i++) await registry.fire(`https://other${i % 5}.example:443`, async () => 200, is5xx);
    const origin = 'https://alone.example:443';
    await registry.fire(origin, async () => 200, is5xx);
    for (let i = 0; i < 2; i++) await registry.fire(origin, async () => 503, is5xx);
    // 2 failures of 3 calls: 67 % > 50 %.
    expect(registry.states().get(origin)).toBe('open');
    expect(registry.size).toBe(1);
  });
});

