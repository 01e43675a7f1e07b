import express from 'express';
import type { Request, Response, Router } from 'express';
import { fromErrorPayload, RelayError } from '@mtls-relay/shared/errors';
import { mappingResultSchema } from '@mtls-relay/shared/jobs';
import type { MappingTuple } from '@mtls-relay/shared/jobs';
import { isValidAccountId, parseTargetUrl } from '@mtls-relay/shared/url';
import { assertAccountAccess } from '../auth/access.ts';
import type { JobQueues } from '../queueing/queue.ts';
import type { ResultWaiter } from '../queueing/waiter.ts';
import { sendProblem } from '../problem.ts';

export interface MappingCheckDeps {
  queues: JobQueues;
  waiter: ResultWaiter;
  syncWaitMs: number;
}

export const MAX_TUPLES = 1000;

/** The v1 key, misspelling included: it is the wire format of the service this one replaces. */
export const mappingKey = (t: MappingTuple): string =>
  `CertificateMappingParamters{serviceName='${t.serviceName}', accountId='${t.accountId}', url='${t.url}'}`;

function invalid(index: number, detail: string): RelayError {
  return new RelayError('invalid_body', `tuple ${index}: ${detail}`, { extra: { index } });
}

/** Checks each tuple; the first bad one is a 400 naming its index. */
export function parseTuples(body: unknown): MappingTuple[] {
  if (!Array.isArray(body)) throw new RelayError('invalid_body', 'the body must be a JSON array of { accountId, serviceName, url }');
  if (body.length > MAX_TUPLES) {
    throw new RelayError('invalid_body', `at most ${MAX_TUPLES} tuples per request; this one has ${body.length}`, {
      extra: { limit: MAX_TUPLES, count: body.length },
    });
  }
  return body.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalid(i, 'must be an object { accountId, serviceName, url }');
    const { accountId, serviceName, url } = item as Record<string, unknown>;
    if (typeof accountId !== 'string' || !isValidAccountId(accountId)) {
      throw invalid(i, 'accountId must be 1-128 letters, digits, ".", "_" or "-"');
    }
    if (typeof serviceName !== 'string' || serviceName.length > 256) throw invalid(i, 'serviceName must be a string of at most 256 characters');
    if (typeof url !== 'string' || url.length > 4096) throw invalid(i, 'url must be a string of at most 4096 characters');
    try {
      parseTargetUrl(url, { allowHttp: true });
    } catch {
      throw invalid(i, 'url must be an absolute http(s) URL such as https://example.com/path');
    }
    return { accountId, serviceName, url };
  });
}

function parseVersion(v: unknown): 1 | 2 {
  if (v === undefined || v === '1') return 1;
  if (v === '2') return 2;
  throw new RelayError('bad_request', 'the query parameter v must be 1 or 2');
}

function parseMatch(m: unknown): 'effective' | 'exact' {
  if (m === undefined || m === 'effective') return 'effective';
  if (m === 'exact') return 'exact';
  throw new RelayError('bad_request', 'the query parameter match must be "effective" (the default) or "exact"');
}

/**
 * `POST /mtls/mapping`: for each (accountId, serviceName, url), would a forward with these parameters present a
 * valid certificate (by an exact mapping or by hostname)? With `?match=exact`: does a mapping exist for exactly
 * this tuple? Answered by a `mapping` job, so the workers' resolver (and its cache) decides exactly as it would
 * for a forward.
 */
export function mappingCheckRouter(deps: MappingCheckDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: '5mb', type: () => true });

  router.post('/mtls/mapping', json, async (req: Request, res: Response) => {
    const version = parseVersion(req.query['v']);
    const match = parseMatch(req.query['match']);
    const tuples = parseTuples(req.body);
    for (const accountId of new Set(tuples.map((t) => t.accountId))) assertAccountAccess(res, accountId);

    let exists: boolean[] = [];
    if (tuples.length > 0) {
      const jobId = deps.queues.newMappingId();
      const handle = deps.waiter.register(jobId, 'mapping');
      try {
        await deps.queues.enqueueMapping(jobId, {
          v: 1,
          // The forward path trims LP-service-name; so does the check. The answer echoes what was sent.
          tuples: tuples.map((t) => ({ ...t, serviceName: t.serviceName.trim(), url: t.url.trim() })),
          ...(match === 'exact' ? { match } : {}),
          requestId: String(res.locals['requestId'] ?? jobId),
          replyTo: deps.waiter.channelFor(jobId),
        });
      } catch (err) {
        handle.cancel();
        throw err;
      }
      const outcome = await handle.wait(deps.syncWaitMs);
      if (res.destroyed) return;
      if (outcome === null) throw new RelayError('wait_timeout', `the mapping check did not finish within ${Math.round(deps.syncWaitMs / 1000)} s`);
      if (!outcome.ok) {
        sendProblem(res, fromErrorPayload(outcome.error));
        return;
      }
      const parsed = mappingResultSchema.safeParse(outcome.result);
      if (!parsed.success || parsed.data.exists.length !== tuples.length) {
        throw new RelayError('internal', 'the mapping check result is not readable');
      }
      exists = parsed.data.exists;
    }

    res.setHeader('Cache-Control', 'no-store');
    if (version === 2) {
      res.json(tuples.map((t, i) => ({ accountId: t.accountId, serviceName: t.serviceName, url: t.url, doExist: exists[i] === true })));
      return;
    }
    const answer: Record<string, boolean> = {};
    tuples.forEach((t, i) => {
      answer[mappingKey(t)] = exists[i] === true;
    });
    res.json(answer);
  });

  return router;
}
