import { StoreError } from '../errors.ts';

// RFC 1123 labels: letters, digits and inner hyphens, 1-63 characters.
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The stored form of a hostname pattern (lower case, no trailing dot), or null when it is not a DNS name.
 * `*.` is allowed as the whole first label only; a scheme, path, port, IP literal or space is not a DNS name.
 */
export function normalizeHostnamePattern(raw: string): string | null {
  let name = raw.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.startsWith('*.')) name = name.slice(2);
  if (name.length === 0 || name.length > 253) return null;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return null;
  // An all-digit last label is an IPv4 literal (or no name at all), not a DNS name.
  if (/^\d+$/.test(labels[labels.length - 1] as string)) return null;
  return raw.startsWith('*.') ? `*.${name}` : name;
}

/**
 * Checks and normalises a list of hostname patterns; `field` names the list in messages
 * (e.g. `associated_hostnames`). Duplicates (after normalising) are dropped.
 */
export function normalizeHostnames(list: readonly string[], field: string): string[] {
  const pointer = `/${field.replaceAll('.', '/').replaceAll('[', '/').replaceAll(']', '')}`;
  const out: string[] = [];
  list.forEach((raw, i) => {
    const name = typeof raw === 'string' ? normalizeHostnamePattern(raw) : null;
    if (name === null) {
      throw new StoreError(
        'invalid',
        `${field}[${i}]: ${JSON.stringify(raw)} is not a DNS name (letters, digits, "-" and "."; "*." only as the first label; no scheme, path or port)`,
        { code: 'invalid_hostname', pointer: `${pointer}/${i}` },
      );
    }
    if (!out.includes(name)) out.push(name);
  });
  return out;
}
