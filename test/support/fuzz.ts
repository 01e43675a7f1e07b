/**
 * Fuzzing the relay's front door with fast-check: LP-forward-url spellings of addresses whose class is
 * known by construction, LP-* header values with any byte, bodies, methods, account ids and framing, sent
 * on a raw socket (so that CR, LF and NUL reach the server). Used by test/fuzz.test.ts (loopback
 * addresses only) and test/netns/fuzz-netns.test.ts (every address, inside an isolated namespace).
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { parseRecord } from '../../packages/shared/src/forward-records.ts';
import type { Arbitrary } from 'fast-check';

/** An address chosen by the generator, with what the relay must do with it. */
export interface TargetChoice {
  /** An IPv4 spelling, an IPv6 address without brackets, or a host name. */
  host: string;
  /**
   * What the relay must do, known by construction: 'refuse' (non-global, not allowlisted), 'allow', or
   * 'unknown' (a name that does not resolve: the API lets the worker report it).
   */
  expect: 'refuse' | 'allow' | 'unknown';
}

export interface FuzzCase {
  method: string;
  account: string;
  url: string;
  /** The URL is well formed (https, no user info, valid port) and names `target`. */
  urlValid: boolean;
  target: TargetChoice;
  headers: Array<[string, string]>;
  body: Buffer;
  framing: 'length' | 'chunked' | 'none';
}

const u32 = (a: number, b: number, c: number, d: number): number => ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;

/** An IPv4 address spelled as the WHATWG parser accepts: 1–4 parts, each decimal, hex or octal; maybe a trailing dot. */
export function ipv4Spelling(value: number): Arbitrary<string> {
  return fc
    .record({
      parts: fc.integer({ min: 1, max: 4 }),
      styles: fc.array(fc.constantFrom('dec', 'hex', 'HEX', 'oct', 'oct0'), { minLength: 4, maxLength: 4 }),
      dot: fc.boolean(),
    })
    .map(({ parts, styles, dot }) => {
      const bytes = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
      const nums = [...bytes.slice(0, parts - 1), bytes.slice(parts - 1).reduce((acc, b) => acc * 256 + b, 0)];
      const text = nums.map((n, i) => {
        const style = styles[i] ?? 'dec';
        if (style === 'hex') return `0x${n.toString(16)}`;
        if (style === 'HEX') return `0X${n.toString(16).toUpperCase()}`;
        if (style === 'oct') return `0${n.toString(8)}`;
        if (style === 'oct0') return `00${n.toString(8)}`;
        return String(n);
      });
      return text.join('.') + (dot ? '.' : '');
    });
}

const hex4 = (n: number): string => n.toString(16);

/** IPv6 forms that embed an IPv4 address, spelled in mixed styles. */
export function embeddedV6Spelling(value: number): Arbitrary<string> {
  const hi = (value >>> 16) & 0xffff;
  const lo = value & 0xffff;
  const dotted = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
  const teredoClient = (~value >>> 0) as number;
  return fc.constantFrom(
    `::ffff:${dotted}`,
    `::ffff:${hex4(hi)}:${hex4(lo)}`,
    `0:0:0:0:0:FFFF:${hex4(hi)}:${hex4(lo)}`,
    // The IPv4-compatible form, except for 0.0.0.0 and 0.0.0.1: '::0.0.0.0' and '::0.0.0.1' are '::' and '::1' (RFC
    // 4291 2.5.5.1), the IPv6 unspecified and loopback addresses, not an IPv4 address of 0/8.
    ...(value > 1 ? [`::${dotted}`] : []),
    `64:ff9b::${dotted}`,
    `64:ff9b::${hex4(hi)}:${hex4(lo)}`,
    `2002:${hex4(hi)}:${hex4(lo)}::1`,
    `2001:0:4136:e378:8000:63bf:${hex4(teredoClient >>> 16)}:${hex4(teredoClient & 0xffff)}`,
  );
}

/** A random address inside `a.b.c.d/bits`. */
export function inRange(cidr: string): Arbitrary<number> {
  const [addr = '', bits = '32'] = cidr.split('/');
  const [a = 0, b = 0, c = 0, d = 0] = addr.split('.').map(Number);
  const base = u32(a, b, c, d);
  const size = 2 ** (32 - Number(bits));
  return fc.integer({ min: 0, max: size - 1 }).map((o) => (base + o) >>> 0);
}

/** Any byte but with CR, LF, NUL, DEL and high bytes well represented. */
export const headerValue: Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')),
  fc.constantFrom('true', 'false', 'TRUE', ' true ', 'yes', '', 'Token abc\r\nX-Injected: 1', 'a\rb', 'a\nb', 'a\0b', 'respond-async', 'wait=0', 'wait=-1', 'respond-async, wait=99999999999'),
);

export const methodArb: Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE') },
  { weight: 1, arbitrary: fc.constantFrom('HEAD', 'OPTIONS', 'TRACE', 'LIST', 'CONNECT', 'FOO', 'get') },
);

export const accountArb: Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.stringMatching(/^[a-z0-9]{1,12}$/) },
  { weight: 1, arbitrary: fc.constantFrom('..', 'a..b', 'a%2Fb', 'a:b', 'a%00b', '%0d%0a', 'a'.repeat(200), '%E2%80%AE') },
);

// Framing headers are left to the deterministic smuggling tests: a random Content-Length would only make
// the server wait for a body that never comes.
const LP_NAMES = ['LP-service-name', 'LP-authorization-override', 'LP-stop-if-certificate-not-found', 'LP-forward-url', 'LP-unknown', 'Prefer', 'Idempotency-Key', 'X-Any', 'Connection', 'Expect', 'Host'];

/** Builds whole cases from a target arbitrary (which decides the address space: loopback only, or all). */
export function caseArb(targets: Arbitrary<TargetChoice>, port: number): Arbitrary<FuzzCase> {
  return fc
    .record({
      method: methodArb,
      account: accountArb,
      target: targets,
      scheme: fc.oneof({ weight: 12, arbitrary: fc.constant('https') }, { weight: 1, arbitrary: fc.constantFrom('http', 'HTTPS', 'file', 'gopher', 'ftp', '') }),
      userinfo: fc.oneof({ weight: 12, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('a@', 'user:pass@', '@') }),
      portStyle: fc.oneof({ weight: 12, arbitrary: fc.constant('trap') }, { weight: 1, arbitrary: fc.constantFrom('none', 'bad', 'zero') }),
      path: fc.stringMatching(/^\/[A-Za-z0-9._~%/?=&-]{0,30}$/),
      // Half the cases carry no extra header, so that most of them reach the target check.
      headers: fc.oneof(fc.constant([] as Array<[string, string]>), fc.array(fc.tuple(fc.constantFrom(...LP_NAMES), headerValue), { minLength: 1, maxLength: 4 })),
      body: fc.oneof({ weight: 3, arbitrary: fc.constant(new Uint8Array()) }, { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2048 }) }),
      framing: fc.constantFrom('length', 'chunked', 'none'),
    })
    .map((c) => {
      const host = c.target.host.includes(':') ? `[${c.target.host}]` : c.target.host;
      const portPart = c.portStyle === 'trap' ? `:${port}` : c.portStyle === 'bad' ? ':99999' : c.portStyle === 'zero' ? ':0' : '';
      const url = `${c.scheme}://${c.userinfo}${host}${portPart}${c.path}`;
      const urlValid = c.scheme.toLowerCase() === 'https' && c.userinfo === '' && c.portStyle !== 'bad';
      const framing = c.framing as FuzzCase['framing'];
      return { method: c.method, account: c.account, url, urlValid, target: c.target, headers: c.headers, body: Buffer.from(c.body), framing };
    });
}

/** The bytes of a case as an HTTP/1.1 request (always async: the API answers without waiting for the worker). */
export function requestBytes(c: FuzzCase, auth: Record<string, string>): Buffer {
  const lines = [`${c.method} /mtls/account/${c.account} HTTP/1.1`, 'Host: 127.0.0.1', `LP-forward-url: ${c.url}`, 'Prefer: respond-async', 'Connection: close'];
  for (const [k, v] of Object.entries(auth)) lines.push(`${k}: ${v}`);
  for (const [k, v] of c.headers) lines.push(`${k}: ${v}`);
  let body: Buffer = Buffer.alloc(0);
  if (c.framing === 'length') {
    lines.push(`Content-Length: ${c.body.length}`);
    body = c.body;
  } else if (c.framing === 'chunked') {
    lines.push('Transfer-Encoding: chunked');
    body = Buffer.concat([c.body.length > 0 ? Buffer.from(`${c.body.length.toString(16)}\r\n`) : Buffer.alloc(0), c.body, Buffer.from(c.body.length > 0 ? '\r\n0\r\n\r\n' : '0\r\n\r\n')]);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** Sends raw bytes and returns the status code of the answer (0 when none came before the connection ended). */
export function sendRaw(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 20_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3}) /.exec(Buffer.concat(chunks).subarray(0, 32).toString('latin1'));
      resolve(m === null ? 0 : Number(m[1]));
    });
    // No half-close: Node would drop a response still being computed when the client ends first.
    socket.write(bytes);
  });
}

/**
 * The oracle for one case: an HTTP answer came, and it is never 500. A refused target must be turned away
 * with a 4xx before anything is enqueued (a 2xx or a 502/504 would mean it was forwarded or dialled).
 * Cases may legitimately wait (a `Prefer: wait=N` among the fuzzed headers) and get the target's answer.
 */
export function checkStatus(c: FuzzCase, status: number): string | undefined {
  if (status === 0) return 'no HTTP answer before the connection closed';
  if (status === 500) return '500';
  if (c.urlValid && c.target.expect === 'refuse' && (status < 400 || status >= 500)) return `a refused target got ${status}`;
  return undefined;
}

/** Regression corpus (row 31): target shapes from the reliability matrix, run before the random cases. */
export const SEEDED_LOOPBACK_TARGETS: readonly TargetChoice[] = [
  { host: '127.0.0.1.', expect: 'allow' },
  { host: '2130706433', expect: 'allow' },
  { host: '0x7f000001', expect: 'allow' },
  { host: '0177.0.0.1', expect: 'allow' },
  { host: '127.1', expect: 'allow' },
  { host: '::ffff:127.0.0.1', expect: 'allow' },
  { host: '0.0.0.0', expect: 'refuse' },
  { host: '::', expect: 'refuse' },
  { host: '127.0.0.2', expect: 'refuse' },
  { host: '0x7f000002', expect: 'refuse' },
  { host: '::ffff:7f00:2', expect: 'refuse' },
  // localhost names are loopback (127.0.0.1 and ::1), which the test relays allowlist.
  { host: 'x.localhost', expect: 'allow' },
];

/** The canonical address a socket reports for a dial to `host` (a literal), as the WHATWG parser reads it. */
export function dialledForm(host: string): string | undefined {
  try {
    const h = new URL(`https://${host.includes(':') ? `[${host}]` : host}/`).hostname;
    if (h.startsWith('[')) return h.slice(1, -1);
    return /^\d+\.\d+\.\d+\.\d+$/.test(h) ? `::ffff:${h}` : undefined;
  } catch {
    return undefined;
  }
}

/** Jobs still to run in the forward queue (waiting, active, delayed, prioritized). */
export async function pendingForwardJobs(client: Redis, prefix: string): Promise<number> {
  const k = (s: string): string => `${prefix}:forward:${s}`;
  const [wait, active, delayed, prioritized] = await Promise.all([client.llen(k('wait')), client.llen(k('active')), client.zcard(k('delayed')), client.zcard(k('prioritized'))]);
  return wait + active + delayed + prioritized;
}

/** How many forwards ended with each relay error code (read from the forward records of every job). */
export async function failedJobCodes(client: Redis, prefix: string): Promise<Record<string, number>> {
  const codes: Record<string, number> = {};
  const jobKeys = (await client.keys(`${prefix}:forward:*`)).filter((k) => /:forward:[0-9a-f-]{36}$/.test(k));
  for (const key of jobKeys) {
    const fields = await client.hgetall(key);
    for (const [field, value] of Object.entries(fields)) {
      if (!field.startsWith('r:')) continue;
      const record = parseRecord(value);
      if (record === undefined || 'moved' in record || record.ok) continue;
      codes[record.error.code] = (codes[record.error.code] ?? 0) + 1;
    }
  }
  return codes;
}

/**
 * Regression corpus (row 31): inputs that once failed a fuzz run, replayed first on every run.
 * - CONNECT: Node dropped the socket unanswered (now 405 problem+json).
 * - a second Prefer with a huge wait: a legitimate synchronous answer, once misjudged by the oracle.
 * - a header value with CR LF: split into two header lines by the parser.
 */
export function regressionCases(port: number): FuzzCase[] {
  const base = { account: 'regression', body: Buffer.alloc(0), framing: 'none' as const, urlValid: true };
  return [
    { ...base, method: 'CONNECT', url: `https://127.2039720.:${port}/toL`, target: { host: '127.2039720.', expect: 'refuse' }, headers: [['Connection', 'wait=0']] },
    { ...base, method: 'GET', url: `https://0x7f.0x0.00.0X1.:${port}/`, target: { host: '0x7f.0x0.00.0X1.', expect: 'allow' }, headers: [['Prefer', 'respond-async, wait=99999999999']] },
    { ...base, method: 'DELETE', url: `https://0030026061666.:${port}/`, target: { host: '0030026061666.', expect: 'refuse' }, headers: [['Idempotency-Key', 'Token abc\r\nX-Injected: 1']], framing: 'length' },
    // '::0.0.0.1' is '::1' (loopback, allowed here like 127.0.0.1), '::0.0.0.0' is '::' (unspecified): neither is the
    // IPv4-compatible spelling of an address of 0/8, as the generator once took them to be.
    { ...base, method: 'PUT', url: `https://[::0.0.0.1]:${port}/4O`, target: { host: '::0.0.0.1', expect: 'allow' }, headers: [], body: Buffer.from('a3'), framing: 'chunked' },
    { ...base, method: 'GET', url: `https://[::0.0.0.0]:${port}/`, target: { host: '::0.0.0.0', expect: 'refuse' }, headers: [] },
  ];
}
