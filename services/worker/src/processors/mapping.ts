import { UnrecoverableError } from 'bullmq';
import type { Job } from 'bullmq';
import { encodeFailure, RelayError, relayErrorOf } from '@mtls-relay/shared/errors';
import { mappingJobSchema } from '@mtls-relay/shared/jobs';
import type { MappingResult, MappingTuple } from '@mtls-relay/shared/jobs';
import { parseTargetUrl, isValidAccountId } from '@mtls-relay/shared/url';
import type { CertificateResolver } from '../resolver.ts';

/**
 * The mapping check: for each (accountId, serviceName, url), would a forward with those parameters be sent
 * with a currently valid certificate (by an exact mapping or by hostname)? With `match: 'exact'`: is there a
 * mapping for exactly this tuple? Answered with the same resolver the forward path uses.
 */
export function createMappingProcessor(deps: { resolver: CertificateResolver }): (job: Job) => Promise<MappingResult> {
  return async (job) => {
    const parsed = mappingJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(encodeFailure(new RelayError('invalid_job', 'the job payload is not valid')));
    try {
      const exact = parsed.data.match === 'exact';
      const exists = await Promise.all(parsed.data.tuples.map((t) => hasCertificate(deps.resolver, t, exact)));
      return { v: 1, exists };
    } catch (err) {
      // Store failures as everywhere else (relayErrorOf): only an unavailable store is worth another attempt.
      const mapped = relayErrorOf(err);
      if (!(mapped instanceof RelayError)) throw err;
      const payload = encodeFailure(mapped);
      throw mapped.code === 'store_unavailable' ? new Error(payload) : new UnrecoverableError(payload);
    }
  };
}

async function hasCertificate(resolver: CertificateResolver, tuple: MappingTuple, exact: boolean): Promise<boolean> {
  if (!isValidAccountId(tuple.accountId)) return false;
  let url;
  try {
    url = parseTargetUrl(tuple.url, { allowHttp: true });
  } catch {
    return false;
  }
  if (exact) return resolver.hasMapping(tuple.accountId, tuple.serviceName, url);
  const resolution = await resolver.resolve(tuple.accountId, tuple.serviceName, url);
  return resolution.material !== null;
}
