import { classifyIp, embeddedIpv4, familyOf, formatIp, inRange, mappedIpv4, parseHost, parseIp, sameIp, WIDTH } from './ip.ts';
import type { AddressCategory, IpAddress, Range } from './ip.ts';
import { hostnameMatches } from './url.ts';

export { classifyIp, embeddedIpv4, familyOf, formatIp, parseHost, parseIp } from './ip.ts';
export type { AddressCategory, HostKind, IpAddress } from './ip.ts';

/**
 * The SSRF target policy shared by the API (checked before anything is enqueued) and the worker (checked
 * again at dial time, against the address actually dialled). Only globally reachable unicast addresses
 * (ip.ts) are allowed, unless TARGET_ALLOWLIST names the host or a CIDR holding the address; the relay's
 * own listening sockets (the API's and the worker's health/metrics port) are refused even then. A name with several addresses is refused when any one is.
 */


/** The error both checks raise; the worker maps its code to target_not_allowed (403). */
export class TargetNotAllowedError extends Error {
  readonly code = 'ERR_RELAY_TARGET_NOT_ALLOWED';
  readonly category: AddressCategory;
  constructor(message: string, category: AddressCategory) {
    super(message);
    this.name = 'TargetNotAllowedError';
    this.category = category;
  }
}

export interface SelfAddress {
  /**
   * Every port the relay's own processes listen on: the API's, the worker's health/metrics server's (0 or
   * undefined entries: unknown, skipped). Asked at each check, so that a port bound later counts.
   */
  ports: () => Iterable<number | undefined>;
  /** Addresses the API is reachable on besides loopback and the unspecified address. */
  addresses: readonly string[];
}

export interface Verdict {
  allowed: boolean;
  category: AddressCategory;
}

/** Parses TARGET_ALLOWLIST entries: host names (`*.example.com` allowed), IP addresses and CIDRs. */
export function parseAllowlist(entries: readonly string[]): { hosts: string[]; ranges: Range[]; problems: string[] } {
  const hosts: string[] = [];
  const ranges: Range[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    const [addr = '', bits, extra] = entry.split('/');
    const host = parseHost(addr);
    if (bits !== undefined) {
      const width = host.kind === 'ip' ? WIDTH[familyOf(host.ip)] : 0;
      if (host.kind !== 'ip' || extra !== undefined || !/^\d{1,3}$/.test(bits) || Number(bits) > width) {
        problems.push(`"${entry}" is not a valid CIDR`);
      } else ranges.push([host.ip, Number(bits)]);
    } else if (host.kind === 'ip') ranges.push([host.ip, WIDTH[familyOf(host.ip)]]);
    else if (host.kind === 'name' && /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(host.name)) hosts.push(host.name);
    else problems.push(`"${entry}" is neither a host name, an IP address nor a CIDR`);
  }
  return { hosts, ranges, problems };
}

export class TargetPolicy {
  readonly #hosts: string[];
  readonly #ranges: Range[];
  readonly #self: SelfAddress | undefined;
  readonly #selfIps: IpAddress[];

  constructor(options: { allowlist: readonly string[]; self?: SelfAddress }) {
    const parsed = parseAllowlist(options.allowlist);
    if (parsed.problems.length > 0) throw new Error(`TARGET_ALLOWLIST: ${parsed.problems.join('; ')}`);
    this.#hosts = parsed.hosts;
    this.#ranges = parsed.ranges;
    this.#self = options.self;
    this.#selfIps = (options.self?.addresses ?? []).map(parseIp).filter((ip): ip is IpAddress => ip !== null);
  }

  /** Is this host name explicitly allowlisted (then every address it resolves to is allowed, except the relay itself)? */
  isHostAllowlisted(hostname: string): boolean {
    const h = hostname.toLowerCase().replace(/\.$/, '');
    return this.#hosts.some((pattern) => hostnameMatches(pattern, h));
  }

  #isSelf(ip: IpAddress, port: number): boolean {
    if (this.#self === undefined || port === 0 || ![...this.#self.ports()].includes(port)) return false;
    const forms = [ip, ...embeddedIpv4(ip)];
    return forms.some((f) => {
      const c = classifyIp(f);
      if (c === 'loopback' || c === 'unspecified' || c === 'this-network') return true;
      return this.#selfIps.some((s) => sameIp(s, f));
    });
  }

  /** The verdict for dialling `ip`:`port`; `hostAllowlisted` when the URL named an allowlisted host. */
  check(ip: IpAddress, port: number, hostAllowlisted = false): Verdict {
    if (this.#isSelf(ip, port)) return { allowed: false, category: 'self' };
    if (hostAllowlisted) return { allowed: true, category: 'allowlisted' };
    // A mapped address is dialled as its IPv4 address: an allowlisted IPv4 range covers it too.
    const mapped = mappedIpv4(ip);
    const forms = mapped === null ? [ip] : [ip, mapped];
    if (forms.some((f) => this.#ranges.some((r) => inRange(f, r)))) return { allowed: true, category: 'allowlisted' };
    const category = classifyIp(ip);
    return { allowed: category === 'global', category };
  }

  /** Throws TargetNotAllowedError unless every address may be dialled (mixed answers are refused whole). */
  assertAddresses(hostname: string, addresses: readonly string[], port: number): void {
    const allowlisted = this.isHostAllowlisted(hostname);
    for (const address of addresses) {
      const ip = parseIp(address);
      if (ip === null) throw new TargetNotAllowedError(`${hostname} resolved to an unreadable address`, 'reserved');
      const verdict = this.check(ip, port, allowlisted);
      if (!verdict.allowed) {
        const shown = formatIp(ip);
        const what = verdict.category === 'self' ? 'the relay itself' : `a ${verdict.category} address`;
        throw new TargetNotAllowedError(
          shown === hostname ? `${shown} is ${what}` : `${hostname} resolves to ${shown}, ${what}`,
          verdict.category,
        );
      }
    }
  }
}
