import type { HeaderList } from './jobs.ts';

/**
 * Header rules for both directions of the relay (RFC 9110 §7.6.1): hop-by-hop headers belong to one
 * connection and are never relayed, nor is any header the Connection header names.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers the relay consumes or recomputes itself, never relayed to the target. */
const REQUEST_ONLY: ReadonlySet<string> = new Set(['host', 'content-length', 'authorization', 'prefer', 'expect', 'http2-settings']);

/** Response headers the relay recomputes. */
const RESPONSE_RECOMPUTED: ReadonlySet<string> = new Set(['content-length', 'date']);

function connectionTokens(list: HeaderList): Set<string> {
  const named = new Set<string>();
  for (const [name, value] of list) {
    if (name.toLowerCase() === 'connection') {
      for (const token of value.split(',')) {
        const t = token.trim().toLowerCase();
        if (t !== '') named.add(t);
      }
    }
  }
  return named;
}

/** Node's `rawHeaders` ([name, value, name, value, …]) as a list of pairs, names as the caller wrote them. */
export function pairs(raw: readonly string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

/** What the caller sent, minus hop-by-hop, Host, Content-Length, the caller's Authorization, Prefer and LP-*. */
export function forwardableRequestHeaders(list: HeaderList): HeaderList {
  const named = connectionTokens(list);
  return list.filter(([name]) => {
    const n = name.toLowerCase();
    return !HOP_BY_HOP.has(n) && !REQUEST_ONLY.has(n) && !named.has(n) && !n.startsWith('lp-');
  });
}

/** The target's end-to-end response headers (hop-by-hop, framing and our own LP-* headers removed). */
export function relayableResponseHeaders(list: HeaderList): HeaderList {
  const named = connectionTokens(list);
  return list.filter(([name]) => {
    const n = name.toLowerCase();
    return !HOP_BY_HOP.has(n) && !RESPONSE_RECOMPUTED.has(n) && !named.has(n) && !n.startsWith('lp-mtls') && n !== 'lp-job-id';
  });
}

/** Groups a header list by lower-case name, keeping order and repeated values (for res.setHeader). */
export function groupHeaders(list: HeaderList): Map<string, string[]> {
  const grouped = new Map<string, string[]>();
  for (const [name, value] of list) {
    const key = name.toLowerCase();
    const values = grouped.get(key);
    if (values === undefined) grouped.set(key, [value]);
    else values.push(value);
  }
  return grouped;
}

/** Only visible ASCII and tabs/spaces: a value with CR, LF or NUL could split a header. */
export function isSafeHeaderValue(value: string): boolean {
  return !/[\r\n\0]/.test(value);
}
