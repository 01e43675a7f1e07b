import ipaddr from 'ipaddr.js';

/**
 * IP addresses for the SSRF target policy (net-policy.ts). Spellings are read by the platform's WHATWG
 * host parser (`new URL`), the very parser that reads LP-forward-url, so 2130706433, 0x7f000001,
 * 0177.0.0.1, 127.1 and a trailing dot mean here exactly what they mean to a URL. Addresses, CIDR matching
 * and byte access come from ipaddr.js; the relay's table of refused blocks (IANA special-purpose
 * registries) sits on top. IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)
 * are judged by the address they embed.
 *
 * Why not ipaddr.js's own parser for spellings: it reads '::1.2.3.4' as IPv4-mapped (::ffff:102:304, not
 * the IPv4-compatible ::102:304 a URL means), accepts hex parts inside an IPv6 address's dotted tail,
 * refuses the empty hex part '0x' and a trailing dot, and cannot tell a host name from an invalid address
 * ('1.2.3.4.5' and 'a.1' are invalid URL hosts, not names).
 */

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** An address block, as ipaddr.js's `match` takes it. */
export type Range = [IpAddress, number];

export type HostKind = { kind: 'ip'; ip: IpAddress } | { kind: 'name'; name: string } | { kind: 'invalid' };

/** Why an address is refused; 'global' and 'allowlisted' are the allowed verdicts. */
export type AddressCategory =
  | 'global'
  | 'allowlisted'
  | 'self'
  | 'unspecified'
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'ietf-protocol'
  | 'documentation'
  | 'benchmarking'
  | 'multicast'
  | 'reserved'
  | 'broadcast'
  | 'unique-local'
  | 'site-local'
  | 'discard'
  | 'translation';

export const WIDTH = { 4: 32, 6: 128 } as const;

export const familyOf = (ip: IpAddress): 4 | 6 => (ip.kind() === 'ipv4' ? 4 : 6);

export function inRange(ip: IpAddress, range: Range): boolean {
  return ip.kind() === range[0].kind() && ip.match(range);
}

export function sameIp(a: IpAddress, b: IpAddress): boolean {
  return a.kind() === b.kind() && a.match(b, WIDTH[familyOf(a)]);
}

// --- parsing

// What may reach the URL parser: anything else would end the host early (/ ? # \), be read as user info
// (@), be decoded (%) or silently dropped (tab, newline), so the URL would name some other host.
const NAME_CHARS = /^[^\p{Cc}\s/?#@\\[\]%:]+$/u;
const IPV6_CHARS = /^[0-9a-f:.]+$/;
/** How the URL parser prints an IPv4 address. */
const FOUR_PART = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/**
 * Reads a URL host, a DNS answer or an allowlist entry: an IP address in any spelling a URL accepts
 * (brackets, zone id, trailing dot, the legacy IPv4 forms), a domain name (lower-cased, trailing dot
 * dropped), or invalid (ends in a number but is no IPv4 address; or empty).
 */
export function parseHost(raw: string): HostKind {
  // Every forward reads its target host here at least twice (the api's guard, the policy's check of the address):
  // a URL parse and, for IP literals, ipaddr.js's, about 3 % of the api's time. The answer depends on the string
  // alone, so recent hosts are remembered (the results are never modified by their readers).
  const known = HOSTS.get(raw);
  if (known !== undefined) return known;
  const kind = readHost(raw);
  if (HOSTS.size >= HOSTS_KEPT) HOSTS.clear();
  HOSTS.set(raw, kind);
  return kind;
}

const HOSTS = new Map<string, HostKind>();
const HOSTS_KEPT = 1_000;

function readHost(raw: string): HostKind {
  let host = raw.trim().toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.includes(':')) {
    const zone = host.indexOf('%');
    if (zone >= 0) host = host.slice(0, zone);
    if (!IPV6_CHARS.test(host)) return { kind: 'invalid' };
  } else if (!NAME_CHARS.test(host)) return { kind: 'invalid' };
  let hostname: string;
  try {
    hostname = new URL(`http://${host.includes(':') ? `[${host}]` : host}/`).hostname;
  } catch {
    return { kind: 'invalid' };
  }
  // The URL parser reads every host that ends in a number as IPv4 and prints it as a dotted quad.
  if (hostname.startsWith('[')) return { kind: 'ip', ip: ipaddr.IPv6.parse(hostname.slice(1, -1)) };
  // The cheap shape test first: ipaddr.js's validity check throws (and builds a stack trace) for every name.
  if (FOUR_PART.test(hostname) && ipaddr.IPv4.isValidFourPartDecimal(hostname)) return { kind: 'ip', ip: ipaddr.IPv4.parse(hostname) };
  const name = hostname.replace(/\.$/, '');
  return name === '' || name.startsWith('.') || name.includes('..') ? { kind: 'invalid' } : { kind: 'name', name };
}

/** An IP address in any accepted spelling, or null. */
export function parseIp(raw: string): IpAddress | null {
  const h = parseHost(raw);
  return h.kind === 'ip' ? h.ip : null;
}

/** Dotted quad, or RFC 5952 for IPv6 (as a URL prints it, without brackets). */
export const formatIp = (ip: IpAddress): string => ip.toString();

// --- classification

const cidr = (text: string): Range => ipaddr.parseCIDR(text);
const table = (rows: Partial<Record<AddressCategory, string[]>>): Record<string, Range[]> =>
  Object.fromEntries(Object.entries(rows).map(([category, ranges]) => [category, ranges.map(cidr)]));

// IANA IPv4 Special-Purpose Address Registry: every block that is not globally reachable. The first
// category that holds the address wins (ipaddr.subnetMatch goes in key order): 0.0.0.0 before 0/8,
// 255.255.255.255 before 240/4.
const IPV4_SPECIAL = table({
  unspecified: ['0.0.0.0/32'],
  'this-network': ['0.0.0.0/8'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
  shared: ['100.64.0.0/10'],
  loopback: ['127.0.0.0/8'],
  'link-local': ['169.254.0.0/16'],
  'ietf-protocol': ['192.0.0.0/24'],
  documentation: ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'],
  benchmarking: ['198.18.0.0/15'],
  multicast: ['224.0.0.0/4'],
  broadcast: ['255.255.255.255/32'],
  reserved: ['192.88.99.0/24', '240.0.0.0/4'],
});

// IANA IPv6 registry. 'global' comes first: the blocks of 2001::/23 that IANA lists as globally reachable.
const IPV6_SPECIAL = table({
  global: ['2001:1::1/128', '2001:1::2/128', '2001:3::/32', '2001:4:112::/48', '2001:20::/28', '2001:30::/28'],
  unspecified: ['::/128'],
  loopback: ['::1/128'],
  translation: ['64:ff9b:1::/48'],
  discard: ['100::/64'],
  'ietf-protocol': ['2001::/23'],
  documentation: ['2001:db8::/32', '3fff::/20'],
  'unique-local': ['fc00::/7'],
  'link-local': ['fe80::/10'],
  'site-local': ['fec0::/10'],
  multicast: ['ff00::/8'],
});
const GLOBAL_UNICAST = cidr('2000::/3');

// IPv6 ranges judged by the IPv4 address they embed, and where it sits (byte offset; Teredo below).
const EMBEDDING: Array<[Range, number]> = [
  [cidr('::ffff:0:0/96'), 12], // mapped
  [cidr('::ffff:0:0:0/96'), 12], // SIIT translated
  [cidr('64:ff9b::/96'), 12], // NAT64
  [cidr('::/96'), 12], // compatible (deprecated); :: and ::1 are not
  [cidr('2002::/16'), 2], // 6to4
];
const TEREDO = cidr('2001::/32');
const UNSPECIFIED_AND_LOOPBACK = cidr('::/127');

const v4At = (bytes: number[], offset: number): ipaddr.IPv4 => new ipaddr.IPv4(bytes.slice(offset, offset + 4));

/** The IPv4 address a mapped address is dialled as, else null. */
export function mappedIpv4(ip: IpAddress): ipaddr.IPv4 | null {
  return ip instanceof ipaddr.IPv6 && ip.isIPv4MappedAddress() ? ip.toIPv4Address() : null;
}

/** The IPv4 addresses an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo), if any. */
export function embeddedIpv4(ip: IpAddress): ipaddr.IPv4[] {
  if (ip.kind() === 'ipv4') return [];
  const bytes = ip.toByteArray();
  // Teredo: the server's address in bytes 4-7, the client's (bit-inverted) in the last four.
  if (inRange(ip, TEREDO)) return [v4At(bytes, 4), v4At(bytes.map((b) => ~b & 0xff), 12)];
  const hit = EMBEDDING.find(([range]) => inRange(ip, range));
  return hit === undefined || inRange(ip, UNSPECIFIED_AND_LOOPBACK) ? [] : [v4At(bytes, hit[1])];
}

/** 'global' when the address is globally reachable unicast, else the special-purpose block it is in. */
export function classifyIp(ip: IpAddress): AddressCategory {
  if (ip.kind() === 'ipv4') return ipaddr.subnetMatch(ip, IPV4_SPECIAL, 'global') as AddressCategory;
  const embedded = embeddedIpv4(ip);
  if (embedded.length > 0) return embedded.map(classifyIp).find((c) => c !== 'global') ?? 'global';
  const special = ipaddr.subnetMatch(ip, IPV6_SPECIAL, 'none');
  if (special !== 'none') return special as AddressCategory;
  return inRange(ip, GLOBAL_UNICAST) ? 'global' : 'reserved';
}
