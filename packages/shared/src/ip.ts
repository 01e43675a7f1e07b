import { isIPv4, isIPv6 } from 'node:net';

/**
 * IP addresses for the SSRF target policy (net-policy.ts): reading a host in every spelling the WHATWG URL
 * parser accepts (2130706433, 0x7f000001, 0177.0.0.1, 127.1, trailing dot, brackets), and classifying an
 * address against the IANA special-purpose registries. IPv6 forms that embed an IPv4 address (mapped,
 * compatible, NAT64, 6to4, Teredo) are judged by the address they embed.
 */

export interface IpAddress {
  readonly family: 4 | 6;
  /** The address as an unsigned integer (32 or 128 bits). */
  readonly value: bigint;
}

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

export interface Range {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly bits: number;
}

export const WIDTH = { 4: 32, 6: 128 } as const;

export function inRange(ip: IpAddress, r: Range): boolean {
  if (ip.family !== r.family) return false;
  const shift = BigInt(WIDTH[r.family] - r.bits);
  return ip.value >> shift === r.base >> shift;
}

// --- parsing

/** One IPv4 part as the WHATWG URL parser reads it: 0x… hex, 0… octal, else decimal. */
function ipv4Number(part: string): bigint | null {
  if (/^0[xX][0-9a-fA-F]*$/.test(part)) return part.length === 2 ? 0n : BigInt(part);
  if (/^0[0-7]+$/.test(part)) return BigInt(`0o${part.slice(1)}`);
  if (/^(0|[1-9][0-9]*)$/.test(part)) return BigInt(part);
  return null;
}

/**
 * The WHATWG IPv4 parser: up to four parts, the last filling the remaining bytes. Returns null when the
 * host does not end in a number (it is then a domain name) and 'invalid' when it does but is no address.
 */
function parseIpv4Host(host: string): bigint | null | 'invalid' {
  const parts = host.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  const last = parts[parts.length - 1] ?? '';
  if (!/^([0-9]+|0[xX][0-9a-fA-F]*)$/.test(last)) return null;
  if (parts.length > 4) return 'invalid';
  const numbers: bigint[] = [];
  for (const p of parts) {
    const n = ipv4Number(p);
    if (n === null) return 'invalid';
    numbers.push(n);
  }
  let value = 0n;
  for (let i = 0; i < numbers.length - 1; i++) {
    const n = numbers[i] as bigint;
    if (n > 255n) return 'invalid';
    value |= n << BigInt(8 * (3 - i));
  }
  const tail = numbers[numbers.length - 1] as bigint;
  if (tail >= 256n ** BigInt(5 - numbers.length)) return 'invalid';
  return value + tail;
}

function parseIpv6(text: string): bigint | null {
  if (!isIPv6(text)) return null;
  let s = text;
  const tailStart = s.lastIndexOf(':') + 1;
  let v4: bigint | undefined;
  if (s.slice(tailStart).includes('.')) {
    const dotted = s.slice(tailStart);
    if (!isIPv4(dotted)) return null;
    v4 = dotted.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(octet), 0n);
    s = `${s.slice(0, tailStart)}0:0`;
  }
  const halves = s.split('::');
  const left = halves[0] === '' ? [] : (halves[0] as string).split(':');
  const right = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] as string).split(':')) : [];
  const groups = halves.length === 2 ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  if (groups.length !== 8) return null;
  let value = groups.reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n);
  if (v4 !== undefined) value = (value & ~0xffffffffn) | v4;
  return value;
}

/**
 * Reads a URL host, a DNS answer or an allowlist entry: an IP address in any spelling (brackets, zone id,
 * trailing dot and the WHATWG IPv4 forms allowed), a domain name (lower-cased, trailing dot dropped), or
 * invalid (ends in a number but is no IPv4 address; or empty).
 */
export function parseHost(raw: string): HostKind {
  let host = raw.trim().toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.includes(':')) {
    const zone = host.indexOf('%');
    const value = parseIpv6(zone >= 0 ? host.slice(0, zone) : host);
    return value === null ? { kind: 'invalid' } : { kind: 'ip', ip: { family: 6, value } };
  }
  const v4 = parseIpv4Host(host);
  if (v4 === 'invalid') return { kind: 'invalid' };
  if (v4 !== null) return { kind: 'ip', ip: { family: 4, value: v4 } };
  const name = host.replace(/\.$/, '');
  return name === '' || name.startsWith('.') || name.includes('..') ? { kind: 'invalid' } : { kind: 'name', name };
}

/** An IP address in any accepted spelling, or null. */
export function parseIp(raw: string): IpAddress | null {
  const h = parseHost(raw);
  return h.kind === 'ip' ? h.ip : null;
}

export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((ip.value >> BigInt(16 * i)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

// --- classification

function cidr(text: string): Range {
  const [addr = '', bits = ''] = text.split('/');
  const ip = parseIp(addr);
  if (ip === null) throw new Error(`bad built-in range ${text}`);
  return { family: ip.family, base: ip.value, bits: Number(bits) };
}

const table = (rows: Array<[string, AddressCategory]>): Array<[Range, AddressCategory]> => rows.map(([c, cat]) => [cidr(c), cat]);

// IANA IPv4 Special-Purpose Address Registry: every block that is not globally reachable.
const IPV4_SPECIAL = table([
  ['0.0.0.0/32', 'unspecified'],
  ['0.0.0.0/8', 'this-network'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'ietf-protocol'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
]);

// IPv6 ranges judged by the IPv4 address they embed (in the low 32 bits unless said otherwise).
export const MAPPED = cidr('::ffff:0:0/96');
const TRANSLATED = cidr('::ffff:0:0:0/96');
const COMPATIBLE = cidr('::/96');
const NAT64 = cidr('64:ff9b::/96');
const SIX_TO_FOUR = cidr('2002::/16');
const TEREDO = cidr('2001::/32');
const GLOBAL_UNICAST = cidr('2000::/3');

const IPV6_SPECIAL = table([
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'translation'],
  ['100::/64', 'discard'],
  ['2001::/23', 'ietf-protocol'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
]);

// Blocks of 2001::/23 that IANA lists as globally reachable.
const IPV6_GLOBAL_EXCEPTIONS = ['2001:1::1/128', '2001:1::2/128', '2001:3::/32', '2001:4:112::/48', '2001:20::/28', '2001:30::/28'].map(cidr);

export const v4 = (value: bigint): IpAddress => ({ family: 4, value: value & 0xffffffffn });

/** The IPv4 addresses an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo), if any. */
export function embeddedIpv4(ip: IpAddress): IpAddress[] {
  if (ip.family === 4) return [];
  const x = ip.value;
  if (inRange(ip, MAPPED) || inRange(ip, TRANSLATED) || inRange(ip, NAT64)) return [v4(x)];
  if (inRange(ip, COMPATIBLE) && x > 1n) return [v4(x)];
  if (inRange(ip, SIX_TO_FOUR)) return [v4(x >> 80n)];
  // Teredo: the server's address in bits 32-63, the client's (bit-inverted) in the low 32 bits.
  if (inRange(ip, TEREDO)) return [v4(x >> 64n), v4(~x)];
  return [];
}

/** 'global' when the address is globally reachable unicast, else the special-purpose block it is in. */
export function classifyIp(ip: IpAddress): AddressCategory {
  if (ip.family === 4) {
    for (const [range, category] of IPV4_SPECIAL) if (inRange(ip, range)) return category;
    return 'global';
  }
  const embedded = embeddedIpv4(ip);
  if (embedded.length > 0) {
    for (const e of embedded) {
      const c = classifyIp(e);
      if (c !== 'global') return c;
    }
    return 'global';
  }
  for (const [range, category] of IPV6_SPECIAL) {
    if (inRange(ip, range) && !IPV6_GLOBAL_EXCEPTIONS.some((g) => inRange(ip, g))) return category;
  }
  return inRange(ip, GLOBAL_UNICAST) ? 'global' : 'reserved';
}
