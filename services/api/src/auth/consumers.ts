/**
 * OAuth 1.0a consumers from OAUTH_CONSUMERS: a JSON array, or the path of a file holding one, loaded and
 * validated once at start. A bad entry stops the start with a message naming the variable and the entry.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '@mtls-relay/shared/errors';
import type { Permission } from './access.ts';

export interface Consumer {
  readonly key: string;
  readonly secret: string;
  readonly permissions: ReadonlySet<Permission>;
  readonly accounts: '*' | ReadonlySet<string>;
}

const consumerSchema = z.strictObject({
  key: z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be 1 to 256 printable ASCII characters'),
  secret: z.string().min(16, 'must be at least 16 characters'),
  permissions: z.array(z.enum(['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'])).min(1, 'must name MTLS_READ_INTERNAL and/or MTLS_WRITE_INTERNAL'),
  accounts: z.array(z.string().min(1)).min(1, 'must list account ids, or ["*"] for all'),
});

/** Parses the value of OAUTH_CONSUMERS (JSON text, or a path to a JSON file) into consumers by key. */
export function loadConsumers(value: string | undefined): Map<string, Consumer> {
  const consumers = new Map<string, Consumer>();
  if (value === undefined) return consumers;
  const text = value.trimStart().startsWith('[') ? value : readConsumerFile(value);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError('invalid configuration:\n  OAUTH_CONSUMERS: is not valid JSON (expected [{ key, secret, permissions, accounts }])');
  }
  const parsed = z.array(consumerSchema).min(1).safeParse(json);
  if (!parsed.success) {
    // Never echo a value: the entries hold secrets.
    const lines = parsed.error.issues.map((i) => `OAUTH_CONSUMERS: ${i.path.length === 0 ? '(list)' : `[${i.path.join('].')}`}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  for (const [i, c] of parsed.data.entries()) {
    if (consumers.has(c.key)) throw new ConfigError(`invalid configuration:\n  OAUTH_CONSUMERS: [${i}].key: duplicate consumer key`);
    consumers.set(c.key, {
      key: c.key,
      secret: c.secret,
      permissions: new Set(c.permissions),
      accounts: c.accounts.includes('*') ? '*' : new Set(c.accounts),
    });
  }
  return consumers;
}

function readConsumerFile(path: string): string {
  try {
    return readFileSync(path.trim(), 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  OAUTH_CONSUMERS: neither a JSON array nor a readable file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
