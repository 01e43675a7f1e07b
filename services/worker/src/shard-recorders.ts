import type { Redis } from 'ioredis';
import { shardOfId } from '@mtls-relay/shared/forward-ids';
import type { ForwardRecord } from '@mtls-relay/shared/forward-records';
import type { Logger } from '@mtls-relay/shared/logging';
import { ForwardRecorder } from './recorder.ts';
import type { RecordWrite } from './recorder.ts';

/** What the forward processor needs of a recorder. */
export type Recorder = Pick<ForwardRecorder, 'write' | 'claimStart' | 'markRunner' | 'runnerOf' | 'recorded' | 'isConnected'>;

/**
 * QUEUE_SHARDS: one ForwardRecorder per shard, picked by the job id (which names its shard). Each shard's
 * records and replies go out in pipelines of their own, so a shard whose master does not answer holds up only
 * its own forwards, and on a Cluster every pipeline stays within one slot.
 */
export class ShardRecorders implements Recorder {
  readonly #recorders: ForwardRecorder[];

  constructor(redis: Redis, prefixes: readonly string[], logger: Logger, options: ConstructorParameters<typeof ForwardRecorder>[3] = {}) {
    this.#recorders = prefixes.map((prefix) => new ForwardRecorder(redis, prefix, logger, options));
  }

  #of(jobId: string): ForwardRecorder {
    const recorder = this.#recorders[shardOfId(jobId, this.#recorders.length) ?? -1];
    if (recorder === undefined) throw new RangeError(`job id ${jobId} names no shard of this relay`);
    return recorder;
  }

  write(write: RecordWrite): Promise<void> {
    return this.#of(write.jobId).write(write);
  }

  claimStart(jobId: string, forwardId: string, attempt: number, token: string): Promise<boolean> {
    return this.#of(jobId).claimStart(jobId, forwardId, attempt, token);
  }

  markRunner(jobId: string, runner: string): void {
    this.#of(jobId).markRunner(jobId, runner);
  }

  runnerOf(jobId: string): Promise<string | null> {
    return this.#of(jobId).runnerOf(jobId);
  }

  recorded(jobId: string, forwardIds: readonly string[]): Promise<Map<string, ForwardRecord>> {
    return this.#of(jobId).recorded(jobId, forwardIds);
  }

  isConnected(nameSuffix: string, jobId?: string): Promise<boolean> {
    return (jobId === undefined ? (this.#recorders[0] as ForwardRecorder) : this.#of(jobId)).isConnected(nameSuffix, jobId);
  }

  /** Pipelines written and records in them, over every shard. */
  get flushes(): number {
    return this.#recorders.reduce((n, r) => n + r.flushes, 0);
  }

  get records(): number {
    return this.#recorders.reduce((n, r) => n + r.records, 0);
  }
}
