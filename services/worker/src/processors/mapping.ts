import { UnrecoverableError } from 'bullmq';
import type { Job } from 'bullmq';
import { RelayError, relayErrorOf, toErrorPayload } from '@mtls-relay/shared/errors';
import { mappingJobSchema } from '@mtls-relay/shared/jobs';
import type { MappingResult, MappingTuple } from '@mtls-relay/shared/jobs';
import { parseTargetUrl, isValidAccountId } from '@mtls-relay/shared/url';
import type { CertificateResolver } from '../resolver.ts';

/**
 * The mapping check: for each (accountId, serviceName, url), would a forward with those parameters be sent
 * with a currently valid certificate? Answered with the same resolver the forward path uses.
 */
export function createMappingProcessor(deps: { resolver: CertificateResolver }): (job: Job) => Promise<MappingResult> {
  return async (job) => {
    const parsed = mappingJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(JSON.stringify({ code: 'invalid_job', detail: 'the job payload is not valid' }));
    let exists: boolean[];
    try {
      exists = await Promise.all(parsed.data.tuples.map((t) => hasCertificate(deps.resolver, t)));
    } catch (err) {
      // A store failure reaches the caller with its code (store_unavailable, store_denied), not as internal.
      const mapped = relayErrorOf(err);
      if (!(mapped instanceof RelayError)) throw err;
      const payload = JSON.stringify(toErrorPayload(mapped));
      throw mapped.code === 'store_unavailable' ? new Error(payload) : new UnrecoverableError(payload);
    }
    return { v: 1, exists };
  };
}

async function hasCertificate(resolver: CertificateResolver, tuple: MappingTuple): Promise<boolean> {
  if (!isValidAccountId(tuple.accountId)) return false;
  let url;
  try {
    url = parseTargetUrl(tuple.url, { allowHttp: true });
  } catch {
    return false;
  }
  const resolution = await resolver.resolve(tuple.accountId, tuple.serviceName, url);
  return resolution.material !== null;
}
