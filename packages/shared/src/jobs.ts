import { z } from 'zod';
import type { ErrorPayload } from './errors.ts';

/**
 * The job catalogue: the one contract between the API (producer) and the workers (consumers).
 * Each job name maps to its queue, its payload and result schemas and its retention. The API parses a
 * payload before enqueueing; the worker parses it again before doing anything.
 *
 * Secrets never travel in clear: request headers (including LP-authorization-override, which becomes the
 * target's Authorization), request bodies, response headers and response bodies are sealed with
 * AES-256-GCM under MASTER_KEY, bound to the job id (sealed-parts.ts).
 */

export const FORWARD_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type ForwardMethod = (typeof FORWARD_METHODS)[number];

/** RFC 9110 §9.2.2: methods that may be sent twice without changing the outcome. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'PUT', 'DELETE', 'HEAD', 'OPTIONS']);

export type HeaderList = Array<[string, string]>;

const sealed = z.string().startsWith('s1.');

/**
 * The hash field, in the job's own hash, of a group of responses sealed together (sealResponseGroup): `g:` and a
 * name unique to the worker run that wrote it. A forward result whose `response` is such a name was sealed with
 * others of its job that were recorded in the same pipeline.
 */
export const RESPONSE_GROUP_FIELD = /^g:[0-9A-Za-z_.-]{1,80}$/;
export const isResponseGroupField = (value: string): boolean => RESPONSE_GROUP_FIELD.test(value);


/** At most this many forwards travel in one batch job (ids carry the index in 3 hex digits, 0xfff marks the batch). */
export const MAX_BATCH_FORWARDS = 256;

/**
 * One forward as it travels inside a batch job. `url` is the target's origin and path in clear (for operators);
 * the query string, which often carries API keys, is sealed like the headers and the body.
 */
export const forwardEntrySchema = z.object({
  /** The forward's public id (`/mtls/jobs/{id}`): its batch job's id with the entry's index in the last 3 hex digits. */
  id: z.string().length(36),
  accountId: z.string().min(1),
  /** '' when the caller sent no LP-service-name. */
  serviceName: z.string(),
  /** Origin and path of LP-forward-url, as the caller sent them (the query travels sealed in `request`). */
  url: z.string().min(1),
  method: z.enum(FORWARD_METHODS),
  /** LP-stop-if-certificate-not-found: true. */
  requireCertificate: z.boolean(),
  /** The caller sent an Idempotency-Key (it travels sealed in the headers): safe to send again. */
  keyed: z.boolean(),
  requestId: z.string(),
  /** Pub/sub channel of the API process waiting for the answer, if any. */
  replyTo: z.string().optional(),
  /**
   * Sealed, in one piece (sealRequest): the headers the target receives (Authorization from
   * LP-authorization-override included), the query string and the body bytes. Absent when the batch carries this
   * forward's request in its `requests` (what the api's group commit does); a retry job's entry always has it.
   */
  request: sealed.optional(),
  enqueuedAt: z.number(),
});
export type ForwardEntry = z.infer<typeof forwardEntrySchema>;

/**
 * A forward job: forwards that reached one API process together travel as one BullMQ job (group commit), so the
 * job system's per-job work (add, fetch, finish, events, retention) is paid once per batch. A forward that needs
 * another attempt continues alone in a retry job (`retry: true`, id = the forward's id) that BullMQ retries
 * with backoff.
 */
export const forwardBatchSchema = z.object({
  v: z.literal(2),
  forwards: z.array(forwardEntrySchema).min(1).max(MAX_BATCH_FORWARDS),
  /**
   * The requests of the forwards that carry none of their own, sealed together in one piece bound to the batch
   * job's id (sealBatchRequests): one cipher operation per batch on each side instead of one per forward.
   */
  requests: sealed.optional(),
  /** Attempts each forward had before this job (a retry job continues a batch's forward). */
  attemptsBefore: z.number().int().min(0),
  /** Attempts a forward gets in all (FORWARD_ATTEMPTS when it was accepted). */
  maxAttempts: z.number().int().min(1),
  /** How long the job and its records are kept once finished, seconds. */
  keepSeconds: z.number().int().min(1),
  retry: z.boolean(),
});
export type ForwardBatch = z.infer<typeof forwardBatchSchema>;

export const mtlsUseSchema = z.object({ used: z.boolean(), certificateId: z.string().optional() });
export type MtlsUse = z.infer<typeof mtlsUseSchema>;

export const forwardResultSchema = z.object({
  v: z.literal(1),
  status: z.number().int().min(100).max(999),
  /**
   * The target's end-to-end response headers and body bytes: sealed in one piece on their own (sealResponse), or
   * the field of the job's hash that holds them sealed with other responses of the job (sealResponseGroup).
   */
  response: z.union([sealed, z.string().regex(RESPONSE_GROUP_FIELD)]),
  bodyBytes: z.number().int().min(0),
  mtls: mtlsUseSchema,
  finishedAt: z.number(),
});
export type ForwardResult = z.infer<typeof forwardResultSchema>;

/** What a forward job returns to BullMQ: the forwards' own outcomes are records (see forward-records.ts). */
export const forwardBatchResultSchema = z.object({ v: z.literal(2), forwards: z.number().int().min(0) });
export type ForwardBatchResult = z.infer<typeof forwardBatchResultSchema>;

export const mappingTupleSchema = z.object({
  accountId: z.string(),
  serviceName: z.string(),
  url: z.string(),
});
export type MappingTuple = z.infer<typeof mappingTupleSchema>;

export const mappingJobSchema = z.object({
  v: z.literal(1),
  tuples: z.array(mappingTupleSchema).max(1000),
  /** `exact`: does a mapping exist for exactly the tuple? Absent: would a forward present a valid certificate? */
  match: z.enum(['effective', 'exact']).optional(),
  requestId: z.string(),
  replyTo: z.string().optional(),
});
export type MappingJob = z.infer<typeof mappingJobSchema>;

export const mappingResultSchema = z.object({ v: z.literal(1), exists: z.array(z.boolean()) });
export type MappingResult = z.infer<typeof mappingResultSchema>;

/** The repeatable certificate-expiry check (added by a job scheduler, never by the API). */
export const expiryJobSchema = z.object({ v: z.literal(1) });

export const expiryResultSchema = z.object({
  v: z.literal(1),
  checkedAt: z.number(),
  total: z.number().int().min(0),
  /** Certificates expiring within each threshold (`"30"`, `"14"`, `"7"` days); expired ones are counted apart. */
  expiringWithin: z.record(z.string(), z.number().int().min(0)),
  expired: z.number().int().min(0),
});
export type ExpiryResult = z.infer<typeof expiryResultSchema>;

/** What the latest expiry check found, kept in Redis so that every process's /metrics can export it. */
export interface ExpirySnapshot {
  checkedAt: number;
  certificates: Array<{ accountId: string; certificateId: string; expiresOn: string }>;
}

/** Warning thresholds of the expiry check, in days, largest first. */
export const EXPIRY_THRESHOLDS_DAYS = [30, 14, 7] as const;

/** Redis key where the latest expiry check's result is kept for the metrics of every process. */
export const expirySnapshotKey = (prefix: string): string => `${prefix}:certificate-expiry`;

export interface JobSpec<P extends z.ZodType, R extends z.ZodType> {
  readonly queue: string;
  readonly payload: P;
  readonly result: R;
}

export const JOBS = {
  forward: { queue: 'forward', payload: forwardBatchSchema, result: forwardBatchResultSchema },
  mapping: { queue: 'mapping', payload: mappingJobSchema, result: mappingResultSchema },
  expiry: { queue: 'expiry', payload: expiryJobSchema, result: expiryResultSchema },
} as const satisfies Record<string, JobSpec<z.ZodType, z.ZodType>>;

export type JobName = keyof typeof JOBS;
export const JOB_NAMES = Object.keys(JOBS) as JobName[];

/**
 * BullMQ also appends each job's events to a stream per queue, the "completed" one with the whole (sealed)
 * result. Nothing in the relay reads that stream (replies travel by pub/sub, results are read from the job),
 * so it is kept short: at BullMQ's default of 10,000 events, 1 MB responses would hold about 10 GB of Redis.
 */
export const QUEUE_EVENTS_MAX_LEN = 100;

/** Options for every BullMQ Queue the relay makes. */
export function queueOptions(prefix: string): { prefix: string; streams: { events: { maxLen: number } } } {
  return { prefix, streams: { events: { maxLen: QUEUE_EVENTS_MAX_LEN } } };
}

/** Retention of finished jobs: results stay for polling at least as long as anyone may wait. */
export function retention(resultTtlSeconds: number): { removeOnComplete: { age: number }; removeOnFail: { age: number } } {
  return { removeOnComplete: { age: resultTtlSeconds }, removeOnFail: { age: resultTtlSeconds } };
}

/**
 * A worker publishes an array of these on `replyTo` when forwards (or a mapping job) have finished for good,
 * one message per reply channel for all the replies recorded together. `ok: true` without a `result` is a pointer:
 * the forward is finished, and its outcome is the record Redis kept (in the hash of `job` when named).
 */
export type ReplyMessage =
  | {
      id: string;
      ok: true;
      result?: unknown;
      /** A pointer's job: the hash that holds the record. */
      job?: string;
      /** A pointer's response group (the field of the job's hash), read with the record in the same command. */
      g?: string;
      /** In the api only, never on the wire: the response, opened from its group by whoever read the record. */
      parts?: ResponseParts;
    }
  | { id: string; ok: false; error: ErrorPayload };

/** Results above this size are not inlined in the reply message; the API reads them from the job. */
export const INLINE_REPLY_LIMIT = 64 * 1024;

export const replyChannel = (prefix: string, instanceId: string): string => `${prefix}:reply:${instanceId}`;

/** A forward's request in clear: what sealed-parts.ts seals (headers, query and body). */
export interface RequestParts {
  headers: HeaderList;
  /** The query string with its leading '?', or ''. */
  query: string;
  body: Buffer;
}

/** A target's response in clear: what sealed-parts.ts seals (end-to-end headers and body). */
export interface ResponseParts {
  headers: HeaderList;
  body: Buffer;
}
