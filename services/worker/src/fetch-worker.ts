import { Worker } from 'bullmq';
import type { Job, JobJson } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';

/**
 * BullMQ's Worker, with one change to how it fetches: it drops the queue's wake-up marker that its own successful
 * fetch left behind before it looks for the next job.
 *
 * Why: BullMQ's fetch script re-adds the marker (`ZADD marker 0 "0"`) every time it hands out a job, so that another
 * worker wakes up and looks too. A worker that has just taken a job then does a non-blocking fetch (nothing there on
 * a quiet queue), blocks on the marker — which is still there, so the blocking pop returns at once — and fetches
 * again, for nothing, before it really blocks. For a lone caller that is three of the worker's eight Redis round
 * trips per forward, each a wake-up of the worker and of Redis (docs/performance.md).
 *
 * Here the fetch after a successful one is sent as `ZPOPMIN marker` followed, on the same connection and in the same
 * write, by the fetch script. Nothing can be missed: the fetch runs after the pop, so a job added before it is found (and the marker set
 * again); a job added after it sets the marker again and wakes the blocking pop. A delayed job's marker that is
 * popped here is not lost either: the fetch script promotes due delayed jobs and returns when the next one is due,
 * which the worker then blocks until (BullMQ's own `updateDelays`), as it does when its blocking pop takes that
 * marker.
 */
export class FetchWorker<D = unknown, R = unknown> extends Worker<D, R> {
  /** The last fetch handed out a job, so the marker in the queue is (at least partly) our own. */
  #markerLeftBehind = false;

  protected override async moveToActive(token: string, name?: string): Promise<Job<D, R>> {
    if (this.#markerLeftBehind) {
      this.#markerLeftBehind = false;
      // BullMQ types its client narrowly; it is the ioredis connection (or Cluster) the worker was given.
      const client = (await this.getBackend().client) as unknown as Redis | Cluster;
      // Not awaited: the fetch below goes out right behind it on the same connection, and Redis runs the two in
      // that order. A failed pop only leaves the marker, which costs the empty fetch BullMQ would have made anyway.
      // Both commands leave in one write(2): the socket is corked until this turn of the event loop has run
      // BullMQ's chain of promises up to its write (a write on this machine costs about as much CPU as the whole
      // pop). A single connection only; on a Cluster the two go to the same master in two writes.
      const stream = 'stream' in client && client.status === 'ready' ? client.stream : undefined;
      if (stream !== undefined) {
        stream.cork();
        setImmediate(() => stream.uncork());
      }
      client.zpopmin(this.toKey('marker')).catch(() => undefined);
    }
    return super.moveToActive(token, name);
  }

  protected override nextJobFromJobData(jobData?: JobJson, jobId?: string, token?: string): Promise<Job<D, R>> {
    if (jobData) this.#markerLeftBehind = true;
    return super.nextJobFromJobData(jobData, jobId, token);
  }
}
