import type { Redis } from 'ioredis';
import type { KeyRing } from './crypto.ts';
import { asErrorPayload, isErrorCode, ownFailure } from './errors.ts';
import type { ErrorPayload } from './errors.ts';
import { forwardEntrySchema, forwardResultSchema, isResponseGroupField } from './jobs.ts';
import { batchIdOf, shardOfId } from './forward-ids.ts';
import { openResponseGroup } from './sealed-parts.ts';
import type { ForwardResult, ReplyMessage, ResponseParts } from './jobs.ts';

/**
 * Where a forward's outcome lives, and how it is read back.
 *
 * Forwards travel in batch jobs (jobs.ts). Each forward has a public id shaped like a UUID (forward-ids.ts). When a forward is finished
 * for good, the worker writes its **record** into the hash of the job that ran it, field `r:{forwardId}`
 * (HSETNX: the first outcome is the outcome), and publishes the reply in the same pipeline. The record lives and
 * expires with its job (BullMQ's retention), so results need no keys of their own. A forward that needs another
 * attempt gets a record `moved` in its batch, and continues in a retry job whose id is the forward's id.
 */

export const recordField = (forwardId: string): string => `r:${forwardId}`;

/** A reply's pointer: the forward, the job whose hash holds its record, and the response group read with it. */
export interface Pointer {
  id: string;
  job: string;
  g?: string;
}
export const jobKey = (prefix: string, queue: string, jobId: string): string => `${prefix}:${queue}:${jobId}`;

/**
 * A forward's outcome as its worker recorded it. `n`: attempts made so far. `a`: the account (for scoping).
 * `parts`: never stored; the response, once a reader has opened it from the response group `result.response` names.
 */
export type ForwardRecord =
  | { a: string; n: number; ok: true; result: ForwardResult; parts?: ResponseParts }
  | { a: string; n: number; ok: false; error: ErrorPayload }
  | { a: string; n: number; moved: true };

/** The reply a finished record stands for. */
export function outcomeOf(id: string, record: Exclude<ForwardRecord, { moved: true }>): ReplyMessage {
  if (!record.ok) return { id, ok: false, error: record.error };
  return record.parts === undefined ? { id, ok: true, result: record.result } : { id, ok: true, result: record.result, parts: record.parts };
}

export function parseRecord(text: string | null | undefined): ForwardRecord | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const a = typeof v['a'] === 'string' ? v['a'] : '';
    const n = typeof v['n'] === 'number' ? v['n'] : 0;
    if (v['moved'] === true) return { a, n, moved: true };
    if (v['ok'] === true) {
      const result = forwardResultSchema.safeParse(v['result']);
      if (result.success) return { a, n, ok: true, result: result.data };
    }
    const error = v['error'] as { code?: unknown } | undefined;
    if (v['ok'] === false && error !== undefined && isErrorCode(error.code)) return { a, n, ok: false, error: asErrorPayload({ ...error, code: error.code }) };
  } catch {
    // falls through
  }
  return { a: '', n: 0, ok: false, error: { code: 'internal', detail: 'the forward record is not readable' } };
}

export type PublicState = 'queued' | 'active' | 'completed' | 'failed';

/** A forward as `/mtls/jobs/{id}` shows it. */
export interface ForwardView {
  id: string;
  accountId: string;
  state: PublicState;
  attempts: number;
  createdAt: number;
  finishedAt: number | undefined;
  /** Set once the forward is finished for good. */
  outcome: ReplyMessage | undefined;
}

const JOB_FIELDS = ['timestamp', 'processedOn', 'finishedOn', 'atm', 'failedReason'] as const;

/**
 * Reads forwards back by id with one HMGET in the common case (two when the forward moved to a retry job, and
 * the job's `data` once while an unfinished forward's account must be checked). Never HGETALL: a batch job
 * holds up to MAX_BATCH_FORWARDS records.
 */
export class ForwardRecords {
  readonly #redis: Redis;
  /** BullMQ prefix of each shard (one entry without QUEUE_SHARDS). */
  readonly #prefixes: readonly string[];
  readonly #queue: string;
  /** Opens the response groups that records point at (without it, a grouped response is left unopened). */
  readonly #ring: KeyRing | undefined;

  constructor(redis: Redis, prefix: string | readonly string[], options: { queue?: string; ring?: KeyRing } = {}) {
    this.#redis = redis;
    this.#prefixes = typeof prefix === 'string' ? [prefix] : prefix;
    this.#queue = options.queue ?? 'forward';
    this.#ring = options.ring;
  }

  /** The forward, or undefined when there is no such forward (unknown id, or its job has expired). */
  async view(forwardId: string): Promise<ForwardView | undefined> {
    const batchId = batchIdOf(forwardId);
    if (batchId === undefined) return undefined;
    const shard = shardOfId(forwardId, this.#prefixes.length);
    if (shard === undefined) return undefined;
    const prefix = this.#prefixes[shard] as string;
    const home = await this.#read(prefix, batchId, forwardId);
    if (home === undefined) return undefined;
    if (home.record !== undefined && 'moved' in home.record) {
      // A retry job lives on its forward's shard (the id says so).
      const retry = await this.#read(prefix, forwardId, forwardId);
      if (retry === undefined) return undefined;
      return this.#viewOf(forwardId, retry, home.createdAt, home.record.a, home.record.n);
    }
    return this.#viewOf(forwardId, home, home.createdAt, undefined, 0);
  }

  /**
   * The outcomes recorded for forwards whose records a reply pointed at (forward id, and the job whose hash holds
   * the record): one HMGET per job. A forward without a finished record there is left out (the caller reads its
   * whole view instead).
   */
  async recordedOutcomes(pointers: readonly Pointer[]): Promise<Map<string, ReplyMessage>> {
    const byJob = new Map<string, { ids: string[]; groups: Set<string> }>();
    for (const { id, job, g } of pointers) {
      let entry = byJob.get(job);
      if (entry === undefined) byJob.set(job, (entry = { ids: [], groups: new Set() }));
      entry.ids.push(id);
      if (g !== undefined && isResponseGroupField(g)) entry.groups.add(g);
    }
    const found = new Map<string, ReplyMessage>();
    await Promise.all(
      [...byJob].map(async ([job, { ids, groups }]) => {
        const shard = shardOfId(job, this.#prefixes.length);
        if (shard === undefined) return;
        const key = jobKey(this.#prefixes[shard] as string, this.#queue, job);
        // The response groups the pointers name come in the same HMGET as the records.
        const named = [...groups];
        const values = await this.#redis.hmget(key, ...ids.map(recordField), ...named);
        const records = new Map<string, Exclude<ForwardRecord, { moved: true }>>();
        ids.forEach((id, i) => {
          const record = values[i] === null ? undefined : parseRecord(values[i]);
          if (record !== undefined && !('moved' in record)) records.set(id, record);
        });
        const known = new Map(named.map((field, i) => [field, values[ids.length + i] ?? null]));
        await this.#openGroups(key, job, records, known);
        for (const [id, record] of records) found.set(id, outcomeOf(id, record));
      }),
    );
    return found;
  }

  /**
   * Opens the response groups that ok records of one job point at, and gives each record its `parts`. `known`: group
   * fields already read; the others are read with one HMGET. A group that is gone or does not open leaves its records
   * without parts (their responses then read as unreadable).
   */
  async #openGroups(key: string, jobId: string, records: ReadonlyMap<string, ForwardRecord>, known: Map<string, string | null>): Promise<void> {
    const ring = this.#ring;
    if (ring === undefined) return;
    const grouped = [...records].filter((e): e is [string, Extract<ForwardRecord, { ok: true }>] => {
      const record = e[1];
      return 'ok' in record && record.ok && isResponseGroupField(record.result.response);
    });
    if (grouped.length === 0) return;
    const missing = [...new Set(grouped.map(([, r]) => r.result.response))].filter((field) => !known.has(field));
    if (missing.length > 0) {
      const values = await this.#redis.hmget(key, ...missing);
      missing.forEach((field, i) => known.set(field, values[i] ?? null));
    }
    const opened = new Map<string, Map<string, ResponseParts> | undefined>();
    for (const [id, record] of grouped) {
      const field = record.result.response;
      if (!opened.has(field)) {
        const text = known.get(field);
        let group: Map<string, ResponseParts> | undefined;
        try {
          group = text === null || text === undefined ? undefined : openResponseGroup(ring, jobId, field, text);
        } catch {
          group = undefined;
        }
        opened.set(field, group);
      }
      const parts = opened.get(field)?.get(id);
      if (parts !== undefined) record.parts = parts;
    }
  }

  /** The outcome of a finished forward; null while it runs or when it does not exist. */
  async outcome(forwardId: string): Promise<ReplyMessage | null> {
    return (await this.view(forwardId))?.outcome ?? null;
  }

  async #read(prefix: string, jobId: string, forwardId: string): Promise<JobFields | undefined> {
    const key = jobKey(prefix, this.#queue, jobId);
    const values = await this.#redis.hmget(key, recordField(forwardId), ...JOB_FIELDS);
    const [text, timestamp, processedOn, finishedOn, atm, failedReason] = values;
    if (timestamp === null || timestamp === undefined) return undefined;
    const record = parseRecord(text);
    if (record !== undefined) await this.#openGroups(key, jobId, new Map([[forwardId, record]]), new Map());
    return {
      key,
      record,
      createdAt: Number(timestamp),
      processedOn: processedOn === null || processedOn === undefined ? undefined : Number(processedOn),
      finishedOn: finishedOn === null || finishedOn === undefined ? undefined : Number(finishedOn),
      attemptsMade: Number(atm ?? 0),
      failedReason: failedReason ?? undefined,
    };
  }

  async #viewOf(id: string, job: JobFields, createdAt: number, knownAccount: string | undefined, attemptsBefore: number): Promise<ForwardView | undefined> {
    const record = job.record;
    if (record !== undefined && !('moved' in record)) {
      const outcome = outcomeOf(id, record);
      return {
        id,
        accountId: record.a,
        state: record.ok ? 'completed' : 'failed',
        attempts: record.n,
        createdAt,
        finishedAt: record.ok ? record.result.finishedAt : (job.finishedOn ?? Date.now()),
        outcome,
      };
    }
    const accountId = knownAccount ?? (await this.#accountOf(job.key, id));
    if (accountId === undefined) return undefined;
    if (job.finishedOn !== undefined) {
      // The job ended without a record for this forward: it failed as a whole.
      const error = unrecordedFailure(job);
      return { id, accountId, state: 'failed', attempts: attemptsBefore + job.attemptsMade, createdAt, finishedAt: job.finishedOn, outcome: { id, ok: false, error } };
    }
    const state: PublicState = job.processedOn !== undefined ? 'active' : 'queued';
    return { id, accountId, state, attempts: attemptsBefore + job.attemptsMade, createdAt, finishedAt: undefined, outcome: undefined };
  }

  async #accountOf(key: string, forwardId: string): Promise<string | undefined> {
    const data = await this.#redis.hget(key, 'data');
    if (data === null) return undefined;
    try {
      const forwards = (JSON.parse(data) as { forwards?: unknown[] }).forwards ?? [];
      for (const f of forwards) {
        const entry = forwardEntrySchema.pick({ id: true, accountId: true }).safeParse(f);
        if (entry.success && entry.data.id === forwardId) return entry.data.accountId;
      }
    } catch {
      // unreadable: treated as absent
    }
    return undefined;
  }
}

interface JobFields {
  key: string;
  record: ForwardRecord | undefined;
  createdAt: number;
  processedOn: number | undefined;
  finishedOn: number | undefined;
  attemptsMade: number;
  failedReason: string | undefined;
}

/**
 * What a forward that its job ended without recording became. The processor's own refusals (an unreadable batch)
 * are recorded as the job's failure, in our error format. Anything else ends a job only after it was fetched and
 * its runs stopped — BullMQ fails a job whose lock was lost more often than `maxStalledCount` ("job stalled more
 * than allowable limit": both workers that ran it died or were cut off mid-batch) — so the forward may have
 * reached the target, and was not sent again: `delivery_uncertain`, which is what it is, not `internal`.
 */
function unrecordedFailure(job: JobFields): ErrorPayload {
  const own = ownFailure(job.failedReason);
  if (own !== undefined) return own;
  if (job.processedOn !== undefined) {
    return {
      code: 'delivery_uncertain',
      detail: `the workers running this forward stopped before it was recorded (${job.failedReason ?? 'the job failed'}); it may have reached the target and was not sent again`,
    };
  }
  return { code: 'internal', detail: 'the forward job failed before the forward was sent' };
}
