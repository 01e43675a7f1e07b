/**
 * Reading docker-compose.yml the way Compose does before it validates: YAML with merge keys, then variable
 * interpolation (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, nested defaults,
 * `$$` for a literal `$`), applied to every string value.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export class InterpolationError extends Error {}

/** Interpolates one string; `$$` stays a literal `$`. */
export function interpolate(text: string, env: Record<string, string | undefined>): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '$' && text[i + 1] === '$') {
      out += '$';
      i += 2;
    } else if (c === '$' && text[i + 1] === '{') {
      // Find the matching brace (defaults may hold nested ${…}).
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') depth += 1;
        else if (text[j] === '}') depth -= 1;
      }
      if (depth !== 0) throw new InterpolationError(`unterminated \${ in "${text}"`);
      out += expand(text.slice(i + 2, j - 1), env);
      i = j;
    } else if (c === '$' && /[A-Za-z_]/.test(text[i + 1] ?? '')) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1))?.[0] ?? '';
      out += env[name] ?? '';
      i += 1 + name.length;
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
}

function expand(inner: string, env: Record<string, string | undefined>): string {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?$/s.exec(inner);
  if (m === null) throw new InterpolationError(`invalid interpolation "\${${inner}}"`);
  const [, name, op, rest] = m as unknown as [string, string, string | undefined, string | undefined];
  const value = env[name];
  const unsetOrEmpty = value === undefined || (op?.startsWith(':') === true && value === '');
  if (op === undefined) return value ?? '';
  if (op.endsWith('-')) return unsetOrEmpty ? interpolate(rest ?? '', env) : (value as string);
  if (unsetOrEmpty) throw new InterpolationError(`${name}: ${rest ?? 'required'}`);
  return value as string;
}

function walk(value: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((v) => walk(v, env));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, env)]));
  }
  return value;
}

/** The compose file as Compose sees it with `env`: merge keys resolved, every string interpolated. */
export function loadCompose(path: string, env: Record<string, string | undefined>): Record<string, unknown> {
  const raw = parse(readFileSync(path, 'utf8'), { merge: true }) as unknown;
  return walk(raw, env) as Record<string, unknown>;
}
