/**
 * Writes a forward job straight into the relay's queue, bypassing the API (and so its target check), and
 * waits for the worker's verdict: shows that the worker's dial-time check stands on its own.
 */
import { Queue } from 'bullmq';
import { vi } from 'vitest';
import { createKeyRing } from '../../packages/shared/src/crypto.ts';
import { ForwardRecords } from '../../packages/shared/src/forward-records.ts';
import { forwardIdOf, newBatchId } from '../../packages/shared/src/forward-ids.ts';
import { queueOptions } from '../../packages/shared/src/jobs.ts';
import { sealRequest } from '../../packages/shared/src/sealed-parts.ts';
import type { ForwardBatch } from '../../packages/shared/src/jobs.ts';
import type { Relay } from './relay.ts';

/** The error code the forward job failed with, or 'completed' when it reached a target and finished. */
export async function injectForward(relay: Relay, accountId: string, urls: readonly string[]): Promise<string[]> {
  const ring = createKeyRing(Buffer.from(relay.masterKey, 'base64'));
  const queue = new Queue('forward', { connection: relay.client, ...queueOptions(relay.prefix) });
  const outcomes: string[] = [];
  try {
    const records = new ForwardRecords(relay.client, relay.prefix, { ring });
    for (const url of urls) {
      const batchId = newBatchId();
      const id = forwardIdOf(batchId, 0);
      const data: ForwardBatch = {
        v: 2,
        forwards: [{
          id,
          accountId,
          serviceName: '',
          url,
          method: 'GET',
          requireCertificate: false,
          keyed: false,
          requestId: id,
          request: sealRequest(ring, id, { headers: [], query: '', body: Buffer.alloc(0) }),
          enqueuedAt: Date.now(),
        }],
        attemptsBefore: 0,
        maxAttempts: 1,
        keepSeconds: 600,
        retry: false,
      };
      await queue.add('forward', data, { jobId: batchId, attempts: 1 });
      const outcome = await vi.waitFor(async () => {
        const o = await records.outcome(id);
        if (o === null) throw new Error(`forward to ${url} not finished yet`);
        return o;
      }, { timeout: 15_000, interval: 50 });
      outcomes.push(outcome.ok ? 'completed' : outcome.error.code);
    }
  } finally {
    await queue.close();
  }
  return outcomes;
}

/**
 * Adds ONE batch job carrying these forwards straight to the relay's queue (as the api's group commit would when
 * they arrive together) and returns their forward ids, in order.
 */
export async function injectBatch(relay: Relay, accountId: string, forwards: ReadonlyArray<{ method: 'GET' | 'POST'; url: string }>): Promise<string[]> {
  const ring = createKeyRing(Buffer.from(relay.masterKey, 'base64'));
  const queue = new Queue('forward', { connection: relay.client, ...queueOptions(relay.prefix) });
  const batchId = newBatchId();
  const ids = forwards.map((_, i) => forwardIdOf(batchId, i));
  const data: ForwardBatch = {
    v: 2,
    forwards: forwards.map((f, i) => {
      const id = ids[i] as string;
      const u = new URL(f.url);
      return {
        id,
        accountId,
        serviceName: '',
        url: `${u.origin}${u.pathname}`,
        method: f.method,
        requireCertificate: false,
        keyed: false,
        requestId: id,
        request: sealRequest(ring, id, { headers: [], query: u.search, body: Buffer.from(f.method === 'POST' ? 'payload' : '') }),
        enqueuedAt: Date.now(),
      };
    }),
    attemptsBefore: 0,
    maxAttempts: 3,
    keepSeconds: 600,
    retry: false,
  };
  try {
    await queue.add('forward', data, { jobId: batchId, attempts: 1 });
  } finally {
    await queue.close();
  }
  return ids;
}
