/** Small HTTP helpers for end-to-end tests of the admin routes and the forward path. */
import { request } from 'undici';
import type { Relay } from '../support/relay.ts';

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // Parsed JSON body (undefined when the body is not JSON).
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Calls the relay's API as an authenticated administrator; objects are sent as JSON, strings as they are. */
export async function call(relay: Relay, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const res = await request(`${relay.api.url}${path}`, {
    method: method as 'GET',
    headers: { ...relay.auth(), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** Forwards a GET to `url` for `account` (and `service`, when given); the relay's answer. */
export async function forward(relay: Relay, account: string, url: string, service?: string): Promise<ApiResponse> {
  return call(relay, 'GET', `/mtls/account/${account}`, undefined, {
    'lp-forward-url': url,
    ...(service === undefined ? {} : { 'lp-service-name': service }),
  });
}

/** `AA:BB:…` (node's fingerprint256) as the API shows it: lower-case hex without separators. */
export const hexFingerprint = (fingerprint256: string): string => fingerprint256.replaceAll(':', '').toLowerCase();
