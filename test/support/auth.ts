/**
 * Credentials for the auth tests, made with independent client code: OAuth 1.0a requests are signed by the
 * oauth-1.0a npm package (not by the relay's own oauth1.ts), Bearer tokens by jose.
 */
import { createHmac, randomBytes } from 'node:crypto';
import OAuth from 'oauth-1.0a';
import { Queue } from 'bullmq';
import { queueOptions } from '../../packages/shared/src/jobs.ts';
import type { Relay } from './relay.ts';

export interface TestConsumer {
  key: string;
  secret: string;
  permissions: Array<'MTLS_READ_INTERNAL' | 'MTLS_WRITE_INTERNAL'>;
  accounts: string[];
}

export function testConsumer(name: string, permissions: TestConsumer['permissions'], accounts: string[]): TestConsumer {
  return { key: `${name}-${randomBytes(3).toString('hex')}`, secret: randomBytes(24).toString('base64url'), permissions, accounts };
}

export type SignatureMethod = 'HMAC-SHA1' | 'HMAC-SHA256';

/** Signs a request as `consumer` with the oauth-1.0a package; `form` is the urlencoded body's fields. */
export function oauthHeader(
  consumer: Pick<TestConsumer, 'key' | 'secret'>,
  request: { method: string; url: string; form?: Record<string, string>; timestamp?: number },
  signatureMethod: SignatureMethod = 'HMAC-SHA1',
): string {
  const hash = signatureMethod === 'HMAC-SHA1' ? 'sha1' : 'sha256';
  const oauth = new OAuth({
    consumer: { key: consumer.key, secret: consumer.secret },
    signature_method: signatureMethod,
    hash_function: (base, key) => createHmac(hash, key).update(base).digest('base64'),
  });
  if (request.timestamp !== undefined) oauth.getTimeStamp = () => request.timestamp as number;
  // A copy: oauth-1.0a merges the query parameters into the object it is given.
  const data = oauth.authorize({ url: request.url, method: request.method, ...(request.form === undefined ? {} : { data: { ...request.form } }) });
  return oauth.toHeader(data).Authorization;
}

/**
 * The signed protocol parameters (oauth_signature included) for sending in the query string (RFC 5849 §3.5.3)
 * or a form body (§3.5.2) instead of the header; signed by the oauth-1.0a package like oauthHeader.
 */
export function oauthProtocolParams(
  consumer: Pick<TestConsumer, 'key' | 'secret'>,
  request: { method: string; url: string; form?: Record<string, string> },
): Record<string, string> {
  const oauth = new OAuth({
    consumer: { key: consumer.key, secret: consumer.secret },
    signature_method: 'HMAC-SHA1',
    hash_function: (base, key) => createHmac('sha1', key).update(base).digest('base64'),
  });
  const data = oauth.authorize({ url: request.url, method: request.method, ...(request.form === undefined ? {} : { data: { ...request.form } }) });
  return Object.fromEntries(Object.entries(data).filter(([name]) => name.startsWith('oauth_'))) as Record<string, string>;
}

/** The value of one oauth_* parameter of a header made by oauthHeader. */
export function oauthParam(header: string, name: string): string {
  const m = new RegExp(`${name}="([^"]*)"`).exec(header);
  if (m === null) throw new Error(`${name} not in header`);
  return decodeURIComponent(m[1] as string);
}

/** Replaces one oauth_* parameter (already percent-encoded value) in a signed header. */
export function withOAuthParam(header: string, name: string, encodedValue: string): string {
  return header.replace(new RegExp(`${name}="[^"]*"`), `${name}="${encodedValue}"`);
}

/** Jobs in the relay's queues in any state (finished ones are kept for RESULT_TTL_SECONDS): "nothing enqueued". */
export async function queuedJobs(relay: Relay): Promise<number> {
  let total = 0;
  for (const name of ['forward', 'mapping']) {
    const q = new Queue(name, { connection: relay.client, ...queueOptions(relay.prefix) });
    const counts = await q.getJobCounts();
    total += Object.values(counts).reduce((a, b) => a + b, 0);
    await q.close(); // the connection is shared: it stays open
  }
  return total;
}
