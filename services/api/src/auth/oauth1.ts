/**
 * OAuth 1.0a (RFC 5849) signatures, server side: parsing the Authorization header, the signature base string
 * (§3.4.1) and HMAC-SHA1 / HMAC-SHA256 verification (§3.4.2) in constant time. Pure functions, no I/O.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type SignatureMethod = 'HMAC-SHA1' | 'HMAC-SHA256';
export type Param = readonly [name: string, value: string];

export interface OAuthHeader {
  consumerKey: string;
  signatureMethod: SignatureMethod;
  signature: string;
  timestamp: number;
  nonce: string;
  /** Every protocol parameter except realm and oauth_signature, as they enter the base string. */
  params: Param[];
}

/** Why a header was refused; safe to show to the caller. */
export class OAuthFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OAuthFormatError';
  }
}

const HASHES: Record<SignatureMethod, 'sha1' | 'sha256'> = { 'HMAC-SHA1': 'sha1', 'HMAC-SHA256': 'sha256' };

/** RFC 5849 §3.6: percent-encode everything but ALPHA, DIGIT, "-", ".", "_", "~"; UTF-8 first. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function percentDecode(value: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new OAuthFormatError(`${what} is not validly percent-encoded`);
  }
}

// One `name="value"` pair and its separator; values are percent-encoded, so they hold no quote.
const HEADER_PARAM = /\s*([A-Za-z0-9_.~%-]+)\s*=\s*"([^"]*)"\s*(?:,|$)/y;

/**
 * Parses `Authorization: OAuth realm="…", oauth_…="…"` (§3.5.1). Duplicate or unknown oauth_* parameters,
 * a missing required one, or an unsupported method or version are refused.
 */
export function parseOAuthHeader(header: string): OAuthHeader {
  const match = /^OAuth\s+([\s\S]*)$/i.exec(header.trim());
  if (match === null) throw new OAuthFormatError('not an OAuth authorization header');
  const pairs: Param[] = [];
  const text = (match[1] ?? '').trim();
  const re = new RegExp(HEADER_PARAM.source, 'y');
  while (re.lastIndex < text.length) {
    const m = re.exec(text);
    if (m === null) throw new OAuthFormatError('the OAuth header is malformed (expected name="value" pairs)');
    const name = percentDecode(m[1] as string, 'a parameter name');
    const value = percentDecode(m[2] as string, `the value of ${name}`);
    if (name === 'realm') continue;
    if (!name.startsWith('oauth_')) throw new OAuthFormatError(`unexpected parameter ${name} in the OAuth header`);
    pairs.push([name, value]);
  }
  return parseOAuthParams(pairs);
}

/**
 * The protocol parameters however they came: from the header (§3.5.1), or as the oauth_* members of the query
 * string (§3.5.3) or of a form body (§3.5.2). The same checks apply to each.
 */
export function parseOAuthParams(pairs: readonly Param[]): OAuthHeader {
  const seen = new Map<string, string>();
  for (const [name, value] of pairs) {
    if (seen.has(name)) throw new OAuthFormatError(`${name} is given twice`);
    seen.set(name, value);
  }
  const required = (name: string): string => {
    const v = seen.get(name);
    if (v === undefined || v === '') throw new OAuthFormatError(`${name} is missing`);
    return v;
  };
  const consumerKey = required('oauth_consumer_key');
  const method = required('oauth_signature_method');
  if (method !== 'HMAC-SHA1' && method !== 'HMAC-SHA256') {
    throw new OAuthFormatError('oauth_signature_method must be HMAC-SHA1 or HMAC-SHA256');
  }
  const signature = required('oauth_signature');
  const rawTimestamp = required('oauth_timestamp');
  if (!/^\d{1,12}$/.test(rawTimestamp)) throw new OAuthFormatError('oauth_timestamp must be a whole number of seconds');
  const nonce = required('oauth_nonce');
  if (nonce.length > 256) throw new OAuthFormatError('oauth_nonce is longer than 256 characters');
  const version = seen.get('oauth_version');
  if (version !== undefined && version !== '1.0') throw new OAuthFormatError('oauth_version must be 1.0');
  const params = [...seen].filter(([name]) => name !== 'oauth_signature') as Param[];
  return { consumerKey, signatureMethod: method, signature, timestamp: Number(rawTimestamp), nonce, params };
}

/** Is this an OAuth protocol parameter (§3.5.2, §3.5.3: names beginning with `oauth_`)? */
export const isProtocolParam = (name: string): boolean => name.startsWith('oauth_');

/**
 * `encoded` (a query string or an urlencoded body) without its oauth_* members; every other member is kept
 * byte for byte, in order, so that what is relayed is what the caller sent, less the credentials.
 */
export function withoutProtocolParams(encoded: string): string {
  return encoded
    .split('&')
    .filter((part) => {
      const rawName = part.split('=', 1)[0] as string;
      try {
        return !isProtocolParam(decodeURIComponent(rawName.replaceAll('+', ' ')));
      } catch {
        return true;
      }
    })
    .join('&');
}

/** application/x-www-form-urlencoded pairs (§3.4.1.3.1: "+" is a space), in order, duplicates kept. */
export function formParams(encoded: string): Param[] {
  return [...new URLSearchParams(encoded)];
}

/** §3.4.1.3.2: encode names and values, sort by name then value (byte order), join with "=" and "&". */
export function normalizeParameters(params: readonly Param[]): string {
  const encoded = params.map(([n, v]) => [percentEncode(n), percentEncode(v)] as const);
  encoded.sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return encoded.map(([n, v]) => `${n}=${v}`).join('&');
}

/**
 * §3.4.1.2: lowercase scheme and host, the port only when it is not the scheme's default, the path as sent.
 * `host` is the authority the caller used (Host header, or X-Forwarded-Host behind a trusted proxy).
 */
export function baseStringUri(scheme: string, host: string, path: string): string {
  const s = scheme.toLowerCase();
  if (s !== 'http' && s !== 'https') throw new OAuthFormatError('the request scheme is not http or https');
  let authority: string;
  try {
    authority = new URL(`${s}://${host}`).host;
  } catch {
    throw new OAuthFormatError('the Host header is not a valid authority');
  }
  if (authority === '') throw new OAuthFormatError('the Host header is missing');
  return `${s}://${authority}${path === '' ? '/' : path}`;
}

/** §3.4.1.1: METHOD & encoded base string URI & encoded normalised parameters. */
export function signatureBaseString(method: string, uri: string, params: readonly Param[]): string {
  return `${method.toUpperCase()}&${percentEncode(uri)}&${percentEncode(normalizeParameters(params))}`;
}

/** §3.4.2: base64 HMAC of the base string keyed by `consumerSecret&tokenSecret`. */
export function sign(method: SignatureMethod, baseString: string, consumerSecret: string, tokenSecret = ''): string {
  return createHmac(HASHES[method], `${percentEncode(consumerSecret)}&${percentEncode(tokenSecret)}`).update(baseString).digest('base64');
}

/**
 * Compares the given signature with the expected one in time independent of where they differ (and of
 * their lengths: both sides are hashed to a fixed size first).
 */
export function signatureMatches(method: SignatureMethod, baseString: string, consumerSecret: string, given: string): boolean {
  const expected = sign(method, baseString, consumerSecret);
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}
