import { RelayError } from '@mtls-relay/shared/errors';
import { parseHost, TargetNotAllowedError } from '@mtls-relay/shared/net-policy';
import type { TargetPolicy } from '@mtls-relay/shared/net-policy';
import type { HostResolver } from '@mtls-relay/shared/target-dns';
import type { TargetUrl } from '@mtls-relay/shared/url';

/**
 * The API half of the SSRF guard: refuses a target before anything is enqueued when its host is an IP
 * literal that is not allowed, or a name that resolves (now) to any address that is not allowed. A name
 * that does not resolve is left to the worker, which resolves and checks again at dial time anyway and
 * reports the DNS failure.
 */
export function createTargetGuard(
  policy: TargetPolicy,
  resolveHost: HostResolver,
  options: { cacheMs?: number; cacheSize?: number } = {},
): (url: TargetUrl) => Promise<void> {
  // A short cache keeps a DNS query off most requests; the worker resolves and checks again when it dials,
  // so a stale answer here can never let a private address through.
  const cacheMs = options.cacheMs ?? 5_000;
  const cacheSize = options.cacheSize ?? 1_000;
  const cache = new Map<string, { addresses: string[]; until: number }>();
  const resolve = async (name: string): Promise<string[]> => {
    const hit = cache.get(name);
    if (hit !== undefined && hit.until > Date.now()) return hit.addresses;
    const addresses = (await resolveHost(name)).map((a) => a.address);
    cache.delete(name);
    if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
    if (cacheMs > 0) cache.set(name, { addresses, until: Date.now() + cacheMs });
    return addresses;
  };

  const refuse = (err: TargetNotAllowedError): RelayError =>
    new RelayError('target_not_allowed', `${err.message}; the relay does not call non-public addresses`, { extra: { reason: err.category } });

  return async (url) => {
    const host = parseHost(url.hostname);
    if (host.kind === 'invalid') throw new RelayError('invalid_forward_url', 'LP-forward-url has an invalid host');
    let addresses: string[];
    if (host.kind === 'ip') addresses = [url.hostname];
    else {
      // (localhost names resolve to loopback without DNS: see createHostResolver.)
      try {
        addresses = await resolve(host.name);
      } catch {
        return;
      }
    }
    try {
      policy.assertAddresses(host.kind === 'ip' ? url.hostname : host.name, addresses, url.port);
    } catch (err) {
      if (err instanceof TargetNotAllowedError) throw refuse(err);
      throw err;
    }
  };
}
