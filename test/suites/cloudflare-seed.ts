/**
 * The response examples of Cloudflare's Access mTLS API as its public reference gives them ("Access mTLS
 * authentication"), and a checker that compares a response with them key by key.
 * Placeholders: "*string*", "*boolean*", "*integer*"; null (the list example's timestamps) accepts a
 * string or null; {} (the failure example's result) accepts any object or null.
 */

const failureItem = { code: '*integer*', documentation_url: '*string*', message: '*string*', source: { pointer: '*string*' } };

export const SEED = {
  certificate: {
    associated_hostnames: ['*string*'],
    created_at: '*string*',
    expires_on: '*string*',
    fingerprint: '*string*',
    id: '*string*',
    name: '*string*',
    updated_at: '*string*',
  },
  certificateList: [
    {
      associated_hostnames: ['*string*'],
      created_at: null,
      expires_on: '*string*',
      fingerprint: '*string*',
      id: '*string*',
      name: '*string*',
      updated_at: null,
    },
  ],
  settings: [{ china_network: '*boolean*', client_certificate_forwarding: '*boolean*', hostname: '*string*' }],
  deleted: { id: '*string*' },
  failure: { errors: [failureItem], messages: [failureItem], result: {}, success: '*boolean*' },
} as const;

/** Members Cloudflare documents as optional in error and message items. */
const OPTIONAL = new Set(['documentation_url', 'source']);

/** Every way `actual` differs from the seed's `shape`; empty when it conforms. Extra members are allowed. */
export function shapeMismatches(actual: unknown, shape: unknown, path = '$'): string[] {
  if (shape === '*string*') return typeof actual === 'string' ? [] : [`${path}: expected a string, got ${JSON.stringify(actual)}`];
  if (shape === '*boolean*') return typeof actual === 'boolean' ? [] : [`${path}: expected a boolean, got ${JSON.stringify(actual)}`];
  if (shape === '*integer*') return Number.isInteger(actual) ? [] : [`${path}: expected an integer, got ${JSON.stringify(actual)}`];
  if (shape === null) return actual === null || typeof actual === 'string' ? [] : [`${path}: expected a string or null`];
  if (Array.isArray(shape)) {
    if (!Array.isArray(actual)) return [`${path}: expected an array`];
    return actual.flatMap((item, i) => shapeMismatches(item, shape[0], `${path}[${i}]`));
  }
  if (typeof shape === 'object') {
    const keys = Object.keys(shape);
    if (keys.length === 0) return typeof actual === 'object' ? [] : [`${path}: expected an object or null`];
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return [`${path}: expected an object`];
    return keys.flatMap((k) => {
      if (!(k in actual)) return OPTIONAL.has(k) ? [] : [`${path}.${k}: missing`];
      return shapeMismatches((actual as Record<string, unknown>)[k], (shape as Record<string, unknown>)[k], `${path}.${k}`);
    });
  }
  return [`${path}: unsupported shape`];
}
