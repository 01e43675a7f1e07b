import type { z } from 'zod';
import { RelayError } from '@mtls-relay/shared/errors';

/** `a.b[2].c` from a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc === '' ? String(key) : `${acc}.${String(key)}`), '');
}

/**
 * Parses a request body against `schema`; the first problem becomes a 400 `invalid_body` naming the field.
 * Messages never quote the value (it may be a private key).
 */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body ?? undefined);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue === undefined ? '' : fieldPath(issue.path);
  const message = issue?.message ?? 'invalid';
  // RFC 6901: '' is the whole body, `/a/0/b` a member.
  const pointer = (issue?.path ?? []).map((k) => `/${String(k).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
  throw new RelayError('invalid_body', where === '' ? `body: ${message}` : `${where}: ${message}`, { pointer });
}
