/**
 * The worker's records and replies (services/worker/src/recorder.ts) against a real Redis: a reply carries the
 * outcome Redis kept for the forward, never another one. Two runs of one forward can both finish — a takeover that
 * resent a GET while the run it took over was cut off by a stalled Redis — and the first record stays (HSETNX): the
 * second run's reply must then point the api at that record instead of announcing its own result.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { createKeyRing } from '../packages/shared/src/crypto.ts';
import { SealError } from '../packages/shared/src/crypto.ts';
import { ForwardRecords, jobKey, parseRecord, recordField } from '../packages/shared/src/forward-records.ts';
import { forwardIdOf, newBatchId } from '../packages/shared/src/forward-ids.ts';
import type { ForwardRecord } from '../packages/shared/src/forward-records.ts';
import { openResponseGroup, responseOf, sealResponse } from '../packages/shared/src/sealed-parts.ts';
import type { ForwardResult, ReplyMessage, ResponseParts } from '../packages/shared/src/jobs.ts';
import { createLogger } from '../packages/shared/src/logging.ts';
import { ForwardRecorder } from '../services/worker/src/recorder.ts';
import { startTestRedis } from './support/redis.ts';
import type { TestRedis } from './support/redis.ts';

let redis: TestRedis;
let runA: Redis;
let runB: Redis;
let subscriber: Redis;
const messages: ReplyMessage[] = [];
const prefix = `rr${randomBytes(3).toString('hex')}`;
const channel = `${prefix}:replies:test`;
const ring = createKeyRing(randomBytes(32));
const logger = createLogger({ name: 'recorder-test', level: 'silent' }, new Writable({ write: (_chunk, _enc, done) => done() }));

beforeAll(async () => {
  redis = await startTestRedis();
  // Two workers' record connections, as two runs of one job would have.
  runA = new Redis(redis.url);
  runB = new Redis(redis.url);
  subscriber = new Redis(redis.url);
  subscriber.on('message', (_channel: string, text: string) => messages.push(...(JSON.parse(text) as ReplyMessage[])));
  await subscriber.subscribe(channel);
});

afterAll(async () => {
  for (const c of [runA, runB, subscriber]) c?.disconnect();
  await redis?.close();
});

function answered(forwardId: string, status: number): ForwardRecord {
  return {
    a: 'acct',
    n: 1,
    ok: true,
    result: { v: 1, status, response: sealResponse(ring, forwardId, { headers: [['content-type', 'text/plain']], body: Buffer.from(`status ${status}`) }), bodyBytes: 10, mtls: { used: false }, finishedAt: Date.now() },
  };
}

const repliesFor = (id: string): ReplyMessage[] => messages.filter((m) => m.id === id);
/** The target status an outcome carries (a record, or a reply with its result inline). */
const statusOf = (outcome: ForwardRecord | ReplyMessage | undefined): number | undefined =>
  outcome !== undefined && 'ok' in outcome && outcome.ok && 'result' in outcome ? (outcome.result as { status?: number } | undefined)?.status : undefined;

describe('forward records and their replies', () => {
  it('a run whose record comes first replies with its outcome; one that finds another record replies with a pointer to it', async () => {
    const a = new ForwardRecorder(runA, prefix, logger);
    const b = new ForwardRecorder(runB, prefix, logger);
    const jobId = randomUUID();
    const forwardId = randomUUID();
    await a.write({ jobId, forwardId, record: answered(forwardId, 200), replyTo: channel });
    await b.write({ jobId, forwardId, record: answered(forwardId, 503), replyTo: channel });
    await vi.waitFor(() => expect(repliesFor(forwardId)).toHaveLength(2), { timeout: 5_000, interval: 10 });
    const kept = parseRecord(await redis.client().hget(jobKey(prefix, 'forward', jobId), recordField(forwardId)));
    expect(statusOf(kept)).toBe(200);
    const [first, second] = repliesFor(forwardId);
    expect(statusOf(first)).toBe(200);
    // No result in the second reply: the api reads the record that stayed (the 200), as for a large result.
    expect(second).toEqual({ id: forwardId, ok: true });
  });

  it('two runs finishing at once: every reply with a result carries the kept outcome, and every pointer leads to it', async () => {
    const a = new ForwardRecorder(runA, prefix, logger);
    const b = new ForwardRecorder(runB, prefix, logger);
    const jobId = randomUUID();
    const forwards = Array.from({ length: 50 }, () => randomUUID());
    // Each forward is finished by both runs in the same turn, with different outcomes; which record stays is a race.
    await Promise.all(
      forwards.flatMap((forwardId) => [
        a.write({ jobId, forwardId, record: answered(forwardId, 201), replyTo: channel }),
        b.write({ jobId, forwardId, record: answered(forwardId, 502), replyTo: channel }),
      ]),
    );
    await vi.waitFor(() => expect(forwards.every((id) => repliesFor(id).length === 2)).toBe(true), { timeout: 5_000, interval: 10 });
    const kept = await redis.client().hmget(jobKey(prefix, 'forward', jobId), ...forwards.map(recordField));
    // What the api does with pointers: read the records they name (one HMGET per job).
    const pointers = forwards.flatMap((id) => repliesFor(id).filter((m) => statusOf(m) === undefined).map((m) => ({ id, job: (m as { job?: string }).job ?? '' })));
    const pointed = await new ForwardRecords(redis.client(), prefix).recordedOutcomes(pointers.filter((p) => p.job !== ''));
    forwards.forEach((id, i) => {
      const status = statusOf(parseRecord(kept[i]));
      expect([201, 502]).toContain(status);
      // At most one reply carries a result (the lone-record path), and then the kept one.
      const withResult = repliesFor(id).filter((m) => statusOf(m) !== undefined);
      expect(withResult.length).toBeLessThanOrEqual(1);
      for (const m of withResult) expect(statusOf(m)).toBe(status);
      // Every other reply points at the record: by its job (several records in one message) or for the api to look up.
      for (const m of repliesFor(id).filter((r) => statusOf(r) === undefined)) {
        expect(m).toMatchObject({ id, ok: true });
        if ((m as { job?: string }).job !== undefined) {
          expect((m as { job?: string }).job).toBe(jobId);
          expect(statusOf(pointed.get(id))).toBe(status);
        }
      }
    });
    // Both runs wrote their 50 records in a few pipelines: most replies went as pointers with their job.
    expect(pointers.filter((p) => p.job === jobId).length).toBeGreaterThan(50);
  });

  it('several records for one api: plain records, then one message of pointers naming their jobs, read back with one HMGET per job', async () => {
    const a = new ForwardRecorder(runA, prefix, logger);
    const jobs = [randomUUID(), randomUUID()];
    const forwards = jobs.flatMap((jobId) => Array.from({ length: 3 }, () => ({ jobId, forwardId: randomUUID() })));
    const statuses = new Map(forwards.map(({ forwardId }, i) => [forwardId, 200 + i]));
    const monitor = await redis.client().monitor();
    const commands: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => commands.push(String(args[0]).toLowerCase()));
    try {
      await Promise.all(forwards.map(({ jobId, forwardId }) => a.write({ jobId, forwardId, record: answered(forwardId, statuses.get(forwardId) as number), replyTo: channel })));
      await vi.waitFor(() => expect(forwards.every(({ forwardId }) => repliesFor(forwardId).length === 1)).toBe(true), { timeout: 5_000, interval: 10 });
      await vi.waitFor(() => expect(commands).toContain('publish'), { timeout: 5_000, interval: 10 });
    } finally {
      monitor.disconnect();
    }
    // No script: six HSETNX and one PUBLISH.
    expect(commands.filter((c) => c === 'evalsha' || c === 'eval')).toEqual([]);
    expect(commands.filter((c) => c === 'hsetnx')).toHaveLength(6);
    expect(commands.filter((c) => c === 'publish')).toHaveLength(1);
    for (const { jobId, forwardId } of forwards) expect(repliesFor(forwardId)).toEqual([{ id: forwardId, ok: true, job: jobId }]);
    const pointed = await new ForwardRecords(redis.client(), prefix).recordedOutcomes(forwards.map(({ jobId, forwardId }) => ({ id: forwardId, job: jobId })));
    for (const { forwardId } of forwards) expect(statusOf(pointed.get(forwardId))).toBe(statuses.get(forwardId));
    // A pointer to a job without the record reads nothing (the api then reads the forward's whole view).
    expect((await new ForwardRecords(redis.client(), prefix).recordedOutcomes([{ id: randomUUID(), job: jobs[0] as string }])).size).toBe(0);
  });

  describe('responses sealed in groups (FORWARD_RESPONSE_SEALING=group)', () => {
    /** An ok record whose response the recorder seals, and that response in clear. */
    const finished = (status: number, body: Buffer): { record: ForwardRecord; response: ResponseParts } => ({
      record: { a: 'acct', n: 1, ok: true, result: { v: 1, status, response: '', bodyBytes: body.length, mtls: { used: false }, finishedAt: Date.now() } },
      response: { headers: [['x-status', String(status)]], body },
    });
    const hash = async (jobId: string): Promise<Record<string, string>> => redis.client().hgetall(jobKey(prefix, 'forward', jobId));
    const responseField = (h: Record<string, string>, forwardId: string): string => (parseRecord(h[recordField(forwardId)]) as { result: ForwardResult }).result.response;

    it('the small responses of one job recorded together are sealed in one group, which the api reads with the records', async () => {
      const recorder = new ForwardRecorder(runA, prefix, logger, { ring });
      const jobs = [newBatchId(), newBatchId()];
      // Job 0: three small responses and one larger than a group member may be; job 1: two small ones.
      const forwards = [
        ...[0, 1, 2, 3].map((i) => ({ jobId: jobs[0] as string, forwardId: forwardIdOf(jobs[0] as string, i), body: randomBytes(i === 3 ? 20_000 : 100 + i) })),
        ...[0, 1].map((i) => ({ jobId: jobs[1] as string, forwardId: forwardIdOf(jobs[1] as string, i), body: randomBytes(50 + i) })),
      ];
      const monitor = await redis.client().monitor();
      const commands: string[] = [];
      monitor.on('monitor', (_time: string, args: string[]) => commands.push(String(args[0]).toLowerCase()));
      try {
        await Promise.all(forwards.map(({ jobId, forwardId, body }, i) => recorder.write({ jobId, forwardId, replyTo: channel, ...finished(200 + i, body) })));
        await vi.waitFor(() => expect(forwards.every(({ forwardId }) => repliesFor(forwardId).length === 1)).toBe(true), { timeout: 5_000, interval: 10 });
        await vi.waitFor(() => expect(commands).toContain('publish'), { timeout: 5_000, interval: 10 });
      } finally {
        monitor.disconnect();
      }
      // One HSET per group (one per job), a record per forward, one message of pointers.
      expect(commands.filter((c) => c === 'hset')).toHaveLength(2);
      expect(commands.filter((c) => c === 'hsetnx')).toHaveLength(6);
      const [h0, h1] = [await hash(jobs[0] as string), await hash(jobs[1] as string)];
      const groups0 = Object.keys(h0).filter((f) => f.startsWith('g:'));
      const groups1 = Object.keys(h1).filter((f) => f.startsWith('g:'));
      expect(groups0).toHaveLength(1);
      expect(groups1).toHaveLength(1);
      for (const [h, field] of [[h0, groups0[0]], [h1, groups1[0]]] as const) expect(h[field as string]).toMatch(/^s1\./);
      for (const { jobId, forwardId, body } of forwards) {
        const field = responseField(jobId === jobs[0] ? h0 : h1, forwardId);
        // The large response is sealed on its own; the others name their job's group, as do their pointers.
        if (body.length > 16 * 1024) {
          expect(field).toMatch(/^s1\./);
          expect(repliesFor(forwardId)).toEqual([{ id: forwardId, ok: true, job: jobId }]);
        } else {
          expect(field).toBe(jobId === jobs[0] ? groups0[0] : groups1[0]);
          expect(repliesFor(forwardId)).toEqual([{ id: forwardId, ok: true, job: jobId, g: field }]);
        }
      }
      // The api: the records and their groups in one HMGET per job; every forward gets its own response.
      const records = new ForwardRecords(redis.client(), prefix, { ring });
      const pointers = forwards.map(({ forwardId }) => repliesFor(forwardId)[0] as { id: string; job: string; g?: string });
      const pointed = await records.recordedOutcomes(pointers);
      forwards.forEach(({ forwardId, body }, i) => {
        const outcome = pointed.get(forwardId) as Extract<ReplyMessage, { ok: true }>;
        expect(statusOf(outcome)).toBe(200 + i);
        const parts = responseOf(ring, forwardId, outcome.result as ForwardResult, outcome.parts);
        expect(parts.body.equals(body)).toBe(true);
        expect(parts.headers).toEqual([['x-status', String(200 + i)]]);
      });
      // Polling (one forward's view, its group not named beforehand) reads the group too.
      await redis.client().hset(jobKey(prefix, 'forward', jobs[1] as string), 'timestamp', String(Date.now()));
      const second = forwards[5] as (typeof forwards)[number];
      const polled = (await records.outcome(second.forwardId)) as Extract<ReplyMessage, { ok: true }>;
      expect(polled.parts?.body.equals(second.body)).toBe(true);
      // Without the key ring a grouped response stays unopened, and reading it says so rather than guessing.
      const unopened = (await new ForwardRecords(redis.client(), prefix).recordedOutcomes([pointers[5] as { id: string; job: string }])).get(second.forwardId) as Extract<ReplyMessage, { ok: true }>;
      expect(unopened.parts).toBeUndefined();
      expect(() => responseOf(ring, second.forwardId, unopened.result as ForwardResult, undefined)).toThrow(SealError);
    });

    it('a group opens only under its own job and field, and a record pointed at a copied group reads as unreadable', async () => {
      const recorder = new ForwardRecorder(runA, prefix, logger, { ring });
      const jobId = newBatchId();
      const ids = [0, 1].map((i) => forwardIdOf(jobId, i));
      await Promise.all(ids.map((forwardId, i) => recorder.write({ jobId, forwardId, replyTo: undefined, ...finished(200, Buffer.from(`body ${i}`)) })));
      const h = await hash(jobId);
      const field = responseField(h, ids[0] as string);
      expect(field).toMatch(/^g:/);
      const sealed = h[field] as string;
      expect([...openResponseGroup(ring, jobId, field, sealed).keys()]).toEqual(ids);
      expect(() => openResponseGroup(ring, newBatchId(), field, sealed)).toThrow(SealError);
      expect(() => openResponseGroup(ring, jobId, 'g:elsewhere', sealed)).toThrow(SealError);
      // Moved within the hash, and the record pointed at the copy: the response is not opened.
      const key = jobKey(prefix, 'forward', jobId);
      const record = parseRecord(h[recordField(ids[0] as string)]) as { result: ForwardResult };
      await redis.client().hset(key, 'g:copied', sealed, recordField(ids[0] as string), JSON.stringify({ ...record, result: { ...record.result, response: 'g:copied' } }));
      const outcome = (await new ForwardRecords(redis.client(), prefix, { ring }).recordedOutcomes([{ id: ids[0] as string, job: jobId, g: 'g:copied' }])).get(ids[0] as string);
      expect(outcome).toMatchObject({ ok: true });
      expect((outcome as { parts?: unknown }).parts).toBeUndefined();
    });

    it('with groupResponses off (FORWARD_RESPONSE_SEALING=forward) each response is sealed on its own, as older apis read', async () => {
      const recorder = new ForwardRecorder(runA, prefix, logger, { ring, groupResponses: false });
      const jobId = newBatchId();
      const ids = [0, 1, 2].map((i) => forwardIdOf(jobId, i));
      await Promise.all(ids.map((forwardId) => recorder.write({ jobId, forwardId, replyTo: channel, ...finished(200, Buffer.from(forwardId)) })));
      const h = await hash(jobId);
      expect(Object.keys(h).filter((f) => f.startsWith('g:'))).toEqual([]);
      for (const forwardId of ids) expect(responseField(h, forwardId)).toMatch(/^s1\./);
    });

    it('a response in clear is refused without a key ring', async () => {
      const jobId = newBatchId();
      await expect(new ForwardRecorder(runA, prefix, logger).write({ jobId, forwardId: forwardIdOf(jobId, 0), replyTo: undefined, ...finished(200, Buffer.from('x')) })).rejects.toThrow(TypeError);
    });
  });
});
