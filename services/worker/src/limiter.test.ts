import { describe, expect, it } from 'vitest';
import { Limiter } from './limiter.ts';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Limiter', () => {
  it('runs at most `limit` tasks at once, the others in arrival order as slots free up', async () => {
    const limiter = new Limiter(2);
    const started: number[] = [];
    const release: Array<() => void> = [];
    const tasks = [0, 1, 2, 3].map((i) =>
      limiter.run(async () => {
        started.push(i);
        await new Promise<void>((r) => release.push(r));
        return i;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(limiter.running).toBe(2);
    expect(limiter.waiting).toBe(2);
    release[1]?.();
    await tick();
    expect(started).toEqual([0, 1, 2]);
    release[0]?.();
    release[2]?.();
    await tick();
    release[3]?.();
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3]);
    expect(limiter.running).toBe(0);
  });

  it('frees the slot when a task throws', async () => {
    const limiter = new Limiter(1);
    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limiter.run(async () => 'next')).toBe('next');
    expect(limiter.running).toBe(0);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new Limiter(0)).toThrow(RangeError);
  });
});
