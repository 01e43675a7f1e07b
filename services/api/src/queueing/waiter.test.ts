import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { JobName, ReplyMessage } from '@mtls-relay/shared/jobs';
import { createLogger } from '@mtls-relay/shared/logging';
import { ResultWaiter } from './waiter.ts';

/** Just enough of an ioredis subscriber: `subscribe` and the `message` / `ready` events. */
class Subscriber extends EventEmitter {
  async subscribe(): Promise<number> {
    return 1;
  }
}

const logger = createLogger({ name: 'waiter-test', level: 'silent' });

describe('ResultWaiter', () => {
  it('when a reply is lost, reads the outcome from the queue of the job it was registered for', async () => {
    const asked: Array<[string, JobName]> = [];
    const waiter = new ResultWaiter(new Subscriber() as unknown as Redis, 'reply', async (id, name) => {
      asked.push([id, name]);
      return { id, ok: true, result: { v: 1, exists: [true] } };
    }, logger);
    await waiter.start();
    const mapping = waiter.register('m-1', 'mapping');
    const forward = waiter.register('f-1');
    const [m, f] = await Promise.all([mapping.wait(5), forward.wait(5)]);
    expect(asked).toEqual([['m-1', 'mapping'], ['f-1', 'forward']]);
    expect(m).toEqual({ id: 'm-1', ok: true, result: { v: 1, exists: [true] } });
    expect(f?.id).toBe('f-1');
    expect(waiter.pending).toBe(0);
  });

  it('settles a wait from the reply channel, and fetches a result too large to inline from the right queue', async () => {
    const subscriber = new Subscriber();
    const asked: JobName[] = [];
    const waiter = new ResultWaiter(subscriber as unknown as Redis, 'reply', async (id, name) => {
      asked.push(name);
      return { id, ok: true, result: 'from-queue' };
    }, logger);
    await waiter.start();
    const inline = waiter.register('a', 'mapping');
    const large = waiter.register('b', 'mapping');
    subscriber.emit('message', 'reply', JSON.stringify({ id: 'a', ok: true, result: 'inline' } satisfies ReplyMessage));
    subscriber.emit('message', 'reply', JSON.stringify({ id: 'b', ok: true }));
    expect(await inline.wait(60_000)).toEqual({ id: 'a', ok: true, result: 'inline' });
    expect(await large.wait(60_000)).toEqual({ id: 'b', ok: true, result: 'from-queue' });
    expect(asked).toEqual(['mapping']);
  });

  it('reads the records a message points at in one call, and the whole view of a forward not found there', async () => {
    const subscriber = new Subscriber();
    const finals: string[] = [];
    const pointedCalls: Array<Array<{ id: string; job: string }>> = [];
    const waiter = new ResultWaiter(
      subscriber as unknown as Redis,
      'reply',
      async (id) => {
        finals.push(id);
        return { id, ok: false, error: { code: 'delivery_uncertain', detail: 'not sent again' } };
      },
      logger,
      {
        pointed: async (pointers) => {
          pointedCalls.push([...pointers]);
          return new Map(pointers.filter((p) => p.id !== 'f-3').map((p) => [p.id, { id: p.id, ok: true, result: `kept ${p.id}` } as ReplyMessage]));
        },
      },
    );
    await waiter.start();
    const waits = ['f-1', 'f-2', 'f-3'].map((id) => waiter.register(id));
    subscriber.emit('message', 'reply', JSON.stringify(['f-1', 'f-2', 'f-3', 'not-waited'].map((id) => ({ id, ok: true, job: 'job-1' }))));
    const [one, two, three] = await Promise.all(waits.map((w) => w.wait(60_000)));
    expect(pointedCalls).toEqual([[{ id: 'f-1', job: 'job-1' }, { id: 'f-2', job: 'job-1' }, { id: 'f-3', job: 'job-1' }]]);
    expect(one).toEqual({ id: 'f-1', ok: true, result: 'kept f-1' });
    expect(two).toEqual({ id: 'f-2', ok: true, result: 'kept f-2' });
    expect(three).toEqual({ id: 'f-3', ok: false, error: { code: 'delivery_uncertain', detail: 'not sent again' } });
    expect(finals).toEqual(['f-3']);
    expect(waiter.pending).toBe(0);
  });
});
