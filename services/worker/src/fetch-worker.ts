import { Worker } from 'bullmq';
import type { Job } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';

/**
 * Atomically: if no job waits (wait list and priority set empty), remove the queue's "jobs are waiting" marker
 * (member "0"; a delayed job's marker, member "1", is left alone) and answer 1; otherwise leave it and answer 0.
 */
const DROP_MARKER_IF_EMPTY = `if redis.call('LLEN', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[3], '0')
  return 1
end
return 0`;

/**
 * BullMQ's Worker, with one change to how it fetches: every fetch is followed, in the same write, by a check that
 * drops the wake-up marker when nothing else waits, and the worker then blocks at once instead of looking again.
 *
 * Why: BullMQ's fetch script re-adds the marker (`ZADD marker 0 "0"`) every time it hands out a job, so that another
 * worker wakes up and looks too. A worker that has just taken a job then does a non-blocking fetch (nothing there on
 * a quiet queue), blocks on the marker — which is still there, so the blocking pop returns at once — and fetches
 * again, for nothing, before it really blocks: for a lone caller, three of the worker's seven Redis round trips per
 * forward, each a wake-up of the worker and of Redis (docs/performance.md).
 *
 * Nothing can be missed: the check and the removal are one script, so the marker goes only while the queue is empty,
 * and a job added afterwards sets it again and wakes the blocking pop. When jobs do wait, the marker stays: other
 * workers wake and share them, and this one goes on fetching as BullMQ does. Delayed jobs keep their own marker.
 */
export class FetchWorker<D = unknown, R = unknown> extends Worker<D, R> {
  /** The wait list, the priority set and the marker of this worker's queue (the check script's keys). */
  #checkKeys: string[] | undefined;

  protected override async moveToActive(token: string, name?: string): Promise<Job<D, R>> {
    // BullMQ types its client narrowly; it is the ioredis connection (or Cluster) the worker was given.
    const client = (await this.getBackend().client) as unknown as Redis | Cluster;
    // The fetch and the check leave in one write(2): the socket stays corked while BullMQ's chain of promises runs up
    // to its write, and the check is written behind it on the next turn (a write on this machine costs about as much
    // CPU as a small script). On a Cluster the two go to the queue's master in two writes. If the check ran first,
    // nothing would be lost either: it only ever removes the marker of an empty queue.
    const stream = 'stream' in client && client.status === 'ready' ? client.stream : undefined;
    stream?.cork();
    const fetched = super.moveToActive(token, name);
    const emptied = new Promise<number>((resolve) => {
      setImmediate(() => {
        this.#checkKeys ??= [this.toKey('wait'), this.toKey('prioritized'), this.toKey('marker')];
        client.eval(DROP_MARKER_IF_EMPTY, this.#checkKeys.length, ...this.#checkKeys).then((n) => resolve(Number(n)), () => resolve(0));
        stream?.uncork();
      });
    });
    const job = await fetched;
    // A job was handed out and nothing else waits: block next instead of BullMQ's look for a further job.
    // (`drained` is BullMQ's own flag for "the last fetch found the queue empty"; it is private to its types.)
    if (job !== undefined && (await emptied) === 1) (this as unknown as { drained: boolean }).drained = true;
    return job;
  }
}
