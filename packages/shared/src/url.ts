import { RelayError } from './errors.ts';

/**
 * Target URL handling shared by the API (validation before enqueue), the worker (what is dialled) and the
 * store (mapping keys). Scheme and host are compared case-insensitively with the default port dropped;
 * the path and query are kept exactly as the caller wrote them.
 */
export interface TargetUrl {
  /** `https://host[:port]`, lower-case, default port dropped. */
  readonly origin: string;
  readonly protocol: 'https:' | 'http:';
  /** Host name without brackets (IPv6 literal unbracketed), lower-case. */
  readonly hostname: string;
  readonly port: number;
  /** Path and query exactly as given (`/` when empty); never contains a fragment. */
  readonly pathAndQuery: string;
  /** origin + pathAndQuery: the form used for mapping keys. */
  readonly normalized: string;
}

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)(#.*)?$/;
// Visible ASCII only: the request target goes on the wire as written.
const WIRE_SAFE = /^[\x21-\x7e]*$/;

export function parseTargetUrl(raw: string, options: { allowHttp: boolean }): TargetUrl {
  const bad = (why: string): RelayError => new RelayError('invalid_forward_url', `LP-forward-url ${why}`);
  const m = ABSOLUTE.exec(raw.trim());
  if (m === null) throw bad('must be an absolute URL such as https://example.com/path');
  const [, scheme = '', authority = '', rest = ''] = m;
  const protocol = `${scheme.toLowerCase()}:`;
  if (protocol !== 'https:' && !(protocol === 'http:' && options.allowHttp)) {
    throw bad(options.allowHttp ? 'must use https or http' : 'must use https');
  }
  if (authority.includes('@')) throw bad('must not contain user information');
  if (authority === '') throw bad('has no host');
  if (!WIRE_SAFE.test(rest)) throw bad('has characters that must be percent-encoded');
  let parsed: URL;
  try {
    parsed = new URL(`${protocol}//${authority}/`);
  } catch {
    throw bad('has an invalid host or port');
  }
  if (parsed.hostname === '') throw bad('has no host');
  const pathAndQuery = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (!pathAndQuery.startsWith('/')) throw bad('has an invalid path');
  const hostname = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  const port = parsed.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(parsed.port);
  const origin = `${protocol}//${parsed.host}`;
  return Object.freeze({
    origin,
    protocol,
    hostname: hostname.replace(/\.$/, ''),
    port,
    pathAndQuery,
    normalized: origin + pathAndQuery,
  });
}

/**
 * The mapping-key form of a URL, or the input itself when it does not parse (a mapping check for an
 * unparseable URL then simply finds nothing).
 */
export function normalizeMappingUrl(raw: string): string {
  try {
    return parseTargetUrl(raw, { allowHttp: true }).normalized;
  } catch {
    return raw;
  }
}

/** `*.example.com` matches exactly one extra label; anything else must match exactly (case-insensitive). */
export function hostnameMatches(pattern: string, hostname: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = hostname.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return p === h;
  const suffix = p.slice(1); // ".example.com"
  if (!h.endsWith(suffix)) return false;
  const label = h.slice(0, h.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Account ids become store paths and Redis key parts: no `/`, `:`, `..`, spaces or control characters. */
export function isValidAccountId(id: string): boolean {
  return ACCOUNT_ID.test(id) && !id.includes('..');
}

export function assertAccountId(id: string): string {
  if (!isValidAccountId(id)) {
    throw new RelayError('invalid_account_id', 'accountId must be a letter or digit followed by up to 127 letters, digits, ".", "_" or "-", without ".."');
  }
  return id;
}
