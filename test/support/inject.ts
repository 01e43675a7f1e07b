/**
 * Writes a forward job straight into the relay's queue, bypassing the API (and so its target check), and
 * waits for the worker's verdict: shows that the worker's dial-time check stands on its own.
 */
import { randomUUID } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import { vi } from 'vitest';
import { createKeyRing } from '../../packages/shared/src/crypto.ts';
import { queueOptions, sealHeaders } from '../../packages/shared/src/jobs.ts';
import type { Relay } from './relay.ts';

/** The error code the forward job failed with, or 'completed' when it reached a target and finished. */
export async function injectForward(relay: Relay, accountId: string, urls: readonly string[]): Promise<string[]> {
  const ring = createKeyRing(Buffer.from(relay.masterKey, 'base64'));
  const queue = new Queue('forward', { connection: relay.client, ...queueOptions(relay.prefix) });
  const outcomes: string[] = [];
  try {
    for (const url of urls) {
      const jobId = randomUUID();
      const data = {
        v: 1,
        accountId,
        serviceName: '',
        url,
        method: 'GET',
        requireCertificate: false,
        requestId: jobId,
        headers: sealHeaders(ring, jobId, 'request', []),
        body: null,
        enqueuedAt: Date.now(),
      };
      await queue.add('forward', data, { jobId, attempts: 1 });
      const job = await vi.waitFor(async () => {
        const j = await Job.fromId(queue, jobId);
        if (j?.finishedOn === undefined) throw new Error(`job for ${url} not finished yet`);
        return j;
      }, { timeout: 15_000, interval: 50 });
      if (job.failedReason === undefined || job.failedReason === '') outcomes.push('completed');
      else outcomes.push(String((JSON.parse(job.failedReason) as { code?: unknown }).code));
    }
  } finally {
    await queue.close();
  }
  return outcomes;
}
