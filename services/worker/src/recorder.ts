import { Redis } from 'ioredis';
import type { Cluster } from 'ioredis';
import { jobKey, parseRecord, recordField } from '@mtls-relay/shared/forward-records';
import type { ForwardRecord } from '@mtls-relay/shared/forward-records';
import { INLINE_REPLY_LIMIT } from '@mtls-relay/shared/jobs';
import type { ReplyMessage } from '@mtls-relay/shared/jobs';
import { errorSummary } from '@mtls-relay/shared/logging';
import { clusterMasterOf, isCluster } from '@mtls-relay/shared/redis';
import type { Logger } from '@mtls-relay/shared/logging';

/** One finished forward: its record, and where its reply goes. */
export interface RecordWrite {
  jobId: string;
  forwardId: string;
  record: ForwardRecord;
  replyTo: string | undefined;
}

interface Pending {
  write: RecordWrite;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Jobs whose runner is to be noted in the next pipeline. */
interface RunnerNote {
  jobId: string;
  runner: string;
}

/**
 * Records forward outcomes and sends the replies, with group commit: outcomes that finish while a write is in
 * flight go out together in the next pipeline — one HSETNX per forward (the first outcome recorded is the
 * outcome) and one PUBLISH per reply channel carrying every reply for it. The record comes before the reply in
 * the same pipeline, so a reply never announces what is not recorded; a lost reply is made up for by the api,
 * which rechecks the record.
 */
export class ForwardRecorder {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #queue: string;
  readonly #logger: Logger;
  #pending: Pending[] = [];
  #runners: RunnerNote[] = [];
  #flushing = false;
  #scheduled = false;
  /** Pipelines written and records in them (metrics, the bench). */
  flushes = 0;
  records = 0;

  readonly #sharded: boolean;

  constructor(redis: Redis, prefix: string, logger: Logger, queue = 'forward') {
    this.#redis = redis;
    this.#sharded = isCluster(redis);
    this.#prefix = prefix;
    this.#queue = queue;
    this.#logger = logger;
  }

  /** Resolves once the record is in Redis (and the reply published). */
  write(write: RecordWrite): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ write, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Notes which worker runs a job (read when the job is taken over), in the next pipeline: it is written
   * while the job's first forwards are on their way, long before its lock can expire; a worker that dies
   * before it is written has sent nothing the note could speak for, and a takeover then treats it as gone.
   */
  markRunner(jobId: string, runner: string): void {
    this.#runners.push({ jobId, runner });
    this.#schedule();
  }

  /** The previous runner of a job, if one was noted. */
  async runnerOf(jobId: string): Promise<string | null> {
    return this.#redis.hget(jobKey(this.#prefix, this.#queue, jobId), 'runner');
  }

  /** Records already written for these forwards of a job (by this or another worker). */
  async recorded(jobId: string, forwardIds: readonly string[]): Promise<Map<string, ForwardRecord>> {
    const found = new Map<string, ForwardRecord>();
    if (forwardIds.length === 0) return found;
    const values = await this.#redis.hmget(jobKey(this.#prefix, this.#queue, jobId), ...forwardIds.map(recordField));
    forwardIds.forEach((id, i) => {
      const record = parseRecord(values[i]);
      if (record !== undefined) found.set(id, record);
    });
    return found;
  }

  /**
   * Is the worker process with this connection-name suffix still connected to Redis? A process that died has
   * its sockets closed by the kernel; one that is merely waiting on a stalled Redis keeps them.
   */
  async isConnected(nameSuffix: string, jobId?: string): Promise<boolean> {
    // On a Cluster, the master that holds this recorder's queue: the one the previous runner took the job from.
    const master = clusterMasterOf(this.#redis, jobKey(this.#prefix, this.#queue, jobId ?? 'x'));
    const nodes = !this.#sharded ? [this.#redis] : master instanceof Redis ? [master] : (this.#redis as unknown as Cluster).nodes('master');
    for (const node of nodes) {
      const list = String(await node.client('LIST'));
      if (list.split('\n').some((line) => line.includes(` name=worker-`) && line.includes(`${nameSuffix} `))) return true;
    }
    return false;
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing || (this.#pending.length === 0 && this.#runners.length === 0)) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    const batch = this.#pending;
    const runners = this.#runners;
    this.#pending = [];
    this.#runners = [];
    const pipeline = this.#redis.pipeline();
    const replies = new Map<string, string[]>();
    for (const { write } of batch) {
      pipeline.hsetnx(jobKey(this.#prefix, this.#queue, write.jobId), recordField(write.forwardId), JSON.stringify(write.record));
      if (write.replyTo !== undefined && !('moved' in write.record)) {
        const list = replies.get(write.replyTo) ?? [];
        list.push(replyText(write.forwardId, write.record));
        replies.set(write.replyTo, list);
      }
    }
    // A Cluster carries replies by sharded pub/sub; the channel is in this shard's slot, as the records are.
    for (const [channel, texts] of replies) {
      if (this.#sharded) pipeline.spublish(channel, `[${texts.join(',')}]`);
      else pipeline.publish(channel, `[${texts.join(',')}]`);
    }
    for (const note of runners) pipeline.hset(jobKey(this.#prefix, this.#queue, note.jobId), 'runner', note.runner);
    try {
      const results = (await pipeline.exec()) ?? [];
      batch.forEach((p, i) => {
        const err = results[i]?.[0];
        if (err === null || err === undefined) p.resolve();
        else p.reject(err);
      });
      this.flushes += 1;
      this.records += batch.length;
    } catch (err) {
      this.#logger.warn({ records: batch.length, ...errorSummary(err) }, 'could not write forward records');
      for (const p of batch) p.reject(err);
    } finally {
      this.#flushing = false;
      this.#schedule();
    }
  }
}

function replyText(id: string, record: Exclude<ForwardRecord, { moved: true }>): string {
  const message: ReplyMessage = record.ok ? { id, ok: true, result: record.result } : { id, ok: false, error: record.error };
  const text = JSON.stringify(message);
  // Large results stay in the record; the api reads it when told the forward is done.
  return text.length > INLINE_REPLY_LIMIT && record.ok ? JSON.stringify({ id, ok: true }) : text;
}
