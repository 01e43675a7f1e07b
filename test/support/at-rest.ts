/**
 * "No secret at rest in clear": reads every key of a Redis (every type, every field) and reports any value
 * that holds a PEM block, a private key, a Bearer token, an OAuth signature, a registered test secret
 * (as text, base64, base64url or hex), or a job/result whose headers or body are not sealed.
 *
 * test/support/redis.ts runs it on every private test Redis before stopping it, so it covers every e2e
 * file; tests register the secrets they send (override tokens, bodies) with registerAtRestSecret.
 */
import { appendFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export interface AtRestFinding {
  key: string;
  where: string;
  what: string;
}

export interface AtRestScan {
  keys: number;
  values: number;
  findings: AtRestFinding[];
}

const secrets = new Set<string>();

/** Registers a test secret that must never appear in Redis in any encoding (8 characters or more). */
export function registerAtRestSecret(value: string | Buffer): void {
  const text = Buffer.isBuffer(value) ? value.toString('latin1') : value;
  if (text.length >= 8) secrets.add(text);
}

const PATTERNS: Array<[RegExp, string]> = [
  [/-----BEGIN [A-Z0-9 ]+-----/, 'a PEM block'],
  [/PRIVATE KEY/, 'a private key'],
  [/\bBearer\s+[A-Za-z0-9._~+/-]/i, 'a Bearer token'],
  [/oauth_signature/i, 'an OAuth signature'],
];

// Job and result fields that carry request or response content: sealed (`s1.`) or null, never clear. A result's
// `response` may instead name the response group (a `g:` field of its job's hash) it is sealed in; such fields must
// hold sealed values themselves (checked with the hash).
const SEALED_FIELDS = new Set(['headers', 'body', 'request', 'response', 'privateKey', 'private_key', 'override']);
const GROUP_FIELD = /^g:[0-9A-Za-z_.-]{1,80}$/;
const sealedOrGroup = (k: string, v: unknown): boolean => typeof v === 'string' && (v.startsWith('s1.') || (k === 'response' && GROUP_FIELD.test(v)));

/**
 * The forms a secret can take inside a larger value: itself, hex, and base64/base64url at each of the three
 * byte alignments it may have within the encoded whole (without the edge groups the neighbours change).
 */
function encodings(secret: string): string[] {
  const b = Buffer.from(secret, 'latin1');
  const out = [secret, b.toString('hex')];
  for (const shift of [0, 1, 2]) {
    const shifted = Buffer.concat([Buffer.alloc(shift), b]);
    for (const enc of ['base64', 'base64url'] as const) {
      const core = shifted.toString(enc).slice(shift > 0 ? 4 : 0, -4);
      if (core.length >= 12) out.push(core);
    }
  }
  return out;
}

function checkJson(value: unknown, path: string, out: (where: string, what: string) => void, depth = 0): void {
  if (depth > 20 || value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const p = `${path}.${k}`;
    if (SEALED_FIELDS.has(k) && v !== null && v !== undefined && !sealedOrGroup(k, v)) {
      out(p, `an unsealed "${k}"`);
    }
    if (typeof v === 'string' && (v.startsWith('{') || v.startsWith('['))) {
      try {
        checkJson(JSON.parse(v), p, out, depth + 1);
      } catch {
        // not JSON
      }
    } else checkJson(v, p, out, depth + 1);
  }
}

function checkValue(key: string, where: string, raw: Buffer, findings: AtRestFinding[]): void {
  const text = raw.toString('latin1');
  const add = (w: string, what: string): void => {
    findings.push({ key, where: w, what });
  };
  for (const [re, what] of PATTERNS) if (re.test(text)) add(where, what);
  for (const secret of secrets) {
    if (encodings(secret).some((e) => text.includes(e))) add(where, `the registered test secret "${secret.slice(0, 6)}…"`);
  }
  if (text.startsWith('{') || text.startsWith('[')) {
    try {
      checkJson(JSON.parse(raw.toString('utf8')), where, add);
    } catch {
      // not JSON
    }
  }
}

/** Scans every key (optionally only those starting with `prefix`). */
export async function scanRedisAtRest(client: Redis, options: { prefix?: string } = {}): Promise<AtRestScan> {
  const findings: AtRestFinding[] = [];
  let keys = 0;
  let values = 0;
  let cursor = '0';
  do {
    const [next, batch] = await client.scanBuffer(cursor, 'MATCH', `${options.prefix ?? ''}*`, 'COUNT', 1000);
    cursor = String(next);
    for (const keyBuf of batch) {
      const key = keyBuf.toString('latin1');
      keys += 1;
      const check = (where: string, raw: Buffer): void => {
        values += 1;
        checkValue(key, where, raw, findings);
      };
      check('(key name)', keyBuf);
      const type = await client.type(keyBuf);
      if (type === 'string') {
        const v = await client.getBuffer(keyBuf);
        if (v !== null) check('(value)', v);
      } else if (type === 'hash') {
        const h = await client.hgetallBuffer(keyBuf);
        for (const [field, v] of Object.entries(h)) {
          check(field, v);
          if (GROUP_FIELD.test(field) && !v.toString('latin1').startsWith('s1.')) findings.push({ key, where: field, what: 'an unsealed response group' });
        }
      } else if (type === 'list') {
        (await client.lrangeBuffer(keyBuf, 0, -1)).forEach((v, i) => check(`[${i}]`, v));
      } else if (type === 'set') {
        (await client.smembersBuffer(keyBuf)).forEach((v, i) => check(`{${i}}`, v));
      } else if (type === 'zset') {
        (await client.zrangeBuffer(keyBuf, '0', '-1')).forEach((v, i) => check(`<${i}>`, v));
      } else if (type === 'stream') {
        const entries = (await client.xrangeBuffer(keyBuf, '-', '+')) as Array<[Buffer, Buffer[]]>;
        for (const [id, fields] of entries) {
          for (let i = 0; i + 1 < fields.length; i += 2) check(`${id.toString()}.${(fields[i] as Buffer).toString()}`, fields[i + 1] as Buffer);
        }
      }
    }
  } while (cursor !== '0');
  return { keys, values, findings };
}

export class AtRestViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AtRestViolation';
  }
}

/** The hook of test/support/redis.ts: scans, records the result for the summary, throws AtRestViolation on any finding. */
export async function assertNothingInClear(client: Redis, label: string): Promise<AtRestScan> {
  const scan = await scanRedisAtRest(client);
  const report = process.env['MTLS_RELAY_AT_REST_REPORT'];
  if (report !== undefined && report !== '') {
    appendFileSync(report, `${JSON.stringify({ redis: label, keys: scan.keys, values: scan.values, findings: scan.findings })}\n`);
  }
  if (scan.findings.length > 0) {
    const lines = scan.findings.slice(0, 20).map((f) => `  ${f.key} ${f.where}: ${f.what}`);
    throw new AtRestViolation(`secrets at rest in clear in the test Redis ${label}:\n${lines.join('\n')}`);
  }
  return scan;
}
