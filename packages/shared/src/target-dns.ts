import { lookup } from 'node:dns/promises';
import { Resolver } from 'node:dns/promises';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a target host name to every address it has (rejects with the DNS error code when it has none). */
export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

/**
 * The resolver both target checks use. By default the system resolver (getaddrinfo, so /etc/hosts counts);
 * with TARGET_DNS_SERVERS, those servers are asked directly for A and AAAA records.
 */
export function createHostResolver(options: { servers?: readonly string[]; timeoutMs?: number } = {}): HostResolver {
  const ask = dnsResolver(options.servers ?? [], options.timeoutMs ?? 2_000);
  // RFC 6761 §6.3: localhost names are loopback whatever a DNS server says (as browsers treat them).
  return async (hostname) => {
    const h = hostname.toLowerCase().replace(/\.$/, '');
    if (h === 'localhost' || h.endsWith('.localhost')) return [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }];
    return ask(h);
  };
}

function dnsResolver(servers: readonly string[], timeoutMs: number): HostResolver {
  if (servers.length === 0) {
    return async (hostname) => {
      const answers = await lookup(hostname, { all: true, order: 'verbatim' });
      return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
    };
  }
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers([...servers]);
  return async (hostname) => {
    const [a, aaaa] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const out: ResolvedAddress[] = [];
    if (a.status === 'fulfilled') for (const address of a.value) out.push({ address, family: 4 });
    if (aaaa.status === 'fulfilled') for (const address of aaaa.value) out.push({ address, family: 6 });
    if (out.length > 0) return out;
    // c-ares codes (ENODATA, ESERVFAIL, ETIMEOUT, ECONNREFUSED…) become the getaddrinfo ones the worker classifies.
    const codes = [a, aaaa].map((r) => (r.status === 'rejected' ? (r.reason as { code?: unknown }).code : undefined));
    const absent = codes.every((c) => c === 'ENOTFOUND' || c === 'ENODATA' || c === undefined);
    throw Object.assign(new Error(`${hostname} could not be resolved (${codes.filter(Boolean).join(', ')})`), {
      code: absent ? 'ENOTFOUND' : 'EAI_AGAIN',
    });
  };
}
