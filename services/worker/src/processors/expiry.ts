import { UnrecoverableError } from 'bullmq';
import { encodeFailure, RelayError } from '@mtls-relay/shared/errors';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { EXPIRY_THRESHOLDS_DAYS, expiryJobSchema, expirySnapshotKey, retention } from '@mtls-relay/shared/jobs';
import type { ExpiryResult, ExpirySnapshot } from '@mtls-relay/shared/jobs';
import type { Logger } from '@mtls-relay/shared/logging';
import type { CertificateStore } from '@mtls-relay/shared/store';

const DAY_MS = 86_400_000;
/** Accounts read from the store at once: a Vault with thousands of accounts is not hit all at the same time. */
const ACCOUNT_CONCURRENCY = 8;
export const EXPIRY_SCHEDULER_ID = 'certificate-expiry';

type Found = ExpirySnapshot['certificates'][number] & { name: string };

export interface ExpiryDeps {
  store: CertificateStore;
  /** Where the snapshot for the metrics is written. */
  redis: Redis;
  prefix: string;
  logger: Logger;
  intervalSeconds: number;
  now?: () => number;
}

/** The smallest threshold (7, 14 or 30 days) that `daysLeft` falls within, or undefined beyond 30 days. */
export function expiryThreshold(daysLeft: number): number | undefined {
  let hit: number | undefined;
  for (const t of EXPIRY_THRESHOLDS_DAYS) if (daysLeft <= t) hit = t;
  return hit;
}

/**
 * The repeatable certificate-expiry check: reads every certificate of every account, logs a warning for each
 * one expiring within 30, 14 or 7 days (an error once expired), and keeps what it found in Redis, from which
 * every process exports `mtls_relay_certificate_expiry_days`.
 */
export function createExpiryProcessor(deps: ExpiryDeps): (job: Job) => Promise<ExpiryResult> {
  const now = deps.now ?? Date.now;
  return async (job) => {
    if (!expiryJobSchema.safeParse(job.data).success) {
      throw new UnrecoverableError(encodeFailure(new RelayError('invalid_job', 'the job payload is not valid')));
    }
    const log = deps.logger.child({ jobId: job.id, check: 'certificate-expiry' });
    const checkedAt = now();
    const accounts = (await deps.store.backend.list('accounts')).filter((n) => n.endsWith('/')).map((n) => n.slice(0, -1));
    const certificates: Found[] = [];
    for (let i = 0; i < accounts.length; i += ACCOUNT_CONCURRENCY) {
      const batch = await Promise.all(accounts.slice(i, i + ACCOUNT_CONCURRENCY).map(async (a) => ({ a, list: await deps.store.listCertificates(a) })));
      for (const { a, list } of batch) {
        for (const c of list) certificates.push({ accountId: a, certificateId: c.id, expiresOn: c.expiresOn, name: c.name });
      }
    }

    const expiringWithin: Record<string, number> = Object.fromEntries(EXPIRY_THRESHOLDS_DAYS.map((t) => [String(t), 0]));
    let expired = 0;
    for (const c of certificates) {
      const daysLeft = (Date.parse(c.expiresOn) - checkedAt) / DAY_MS;
      const fields = { accountId: c.accountId, certificateId: c.certificateId, name: c.name, expiresOn: c.expiresOn, daysLeft: Math.floor(daysLeft * 10) / 10 };
      if (daysLeft <= 0) {
        expired += 1;
        log.error(fields, 'certificate has expired: forwards no longer present it');
        continue;
      }
      const threshold = expiryThreshold(daysLeft);
      if (threshold === undefined) continue;
      for (const t of EXPIRY_THRESHOLDS_DAYS) if (daysLeft <= t) expiringWithin[String(t)] = (expiringWithin[String(t)] ?? 0) + 1;
      log.warn({ ...fields, withinDays: threshold }, `certificate expires within ${threshold} days`);
    }

    const snapshot: ExpirySnapshot = {
      checkedAt,
      certificates: certificates.map(({ accountId, certificateId, expiresOn }) => ({ accountId, certificateId, expiresOn })),
    };
    // Kept for a few intervals: a snapshot older than that says the check stopped running (the metrics show its age).
    await deps.redis.set(expirySnapshotKey(deps.prefix), JSON.stringify(snapshot), 'EX', Math.max(3 * deps.intervalSeconds, 3_600));
    const result: ExpiryResult = { v: 1, checkedAt, total: certificates.length, expiringWithin, expired };
    log.info({ total: result.total, expiringWithin, expired }, 'certificate expiry check done');
    return result;
  };
}

/** Creates or updates the repeatable job; safe to call from every worker (one scheduler id, one schedule). */
export async function scheduleExpiryCheck(queue: Queue, intervalSeconds: number): Promise<void> {
  await queue.upsertJobScheduler(
    EXPIRY_SCHEDULER_ID,
    { every: intervalSeconds * 1000 },
    { name: 'expiry', data: { v: 1 }, opts: { attempts: 2, backoff: { type: 'jitter' }, ...retention(Math.max(intervalSeconds * 3, 3_600)) } },
  );
}
