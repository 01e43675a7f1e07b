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
import { ForwardRecords, jobKey, parseRecord, recordField } from '../packages/shared/src/forward-records.ts';
import type { ForwardRecord } from '../packages/shared/src/forward-records.ts';
import { sealResponse } from '../packages/shared/src/jobs.ts';
import type { ReplyMessage } from '../packages/shared/src/jobs.ts';
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
});
