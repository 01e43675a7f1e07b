// Token store and auth endpoints (token lookup/renew/create, AppRole login) for the Vault-compatible test server.
import { randomBytes } from 'node:crypto';
import { envelope, fail } from './vault-kv.ts';
import type { Operation, Reply } from './vault-kv.ts';

interface TokenEntry {
  id: string;
  accessor: string;
  policies: string[];
  path: string;
  displayName: string;
  meta: Record<string, string> | null;
  issuedAt: number;
  /** Seconds as created; 0: never expires (root). */
  ttl: number;
  expiresAt: number | undefined;
  renewable: boolean;
  orphan: boolean;
}

type NewToken = Omit<TokenEntry, 'id' | 'accessor' | 'issuedAt' | 'expiresAt'>;

export interface AppRoleConfig {
  roleId: string;
  secretId: string;
  tokenTtlSeconds?: number;
  renewable?: boolean;
}

/** Vault's default (and system maximum) token TTL: 768h. */
export const DEFAULT_TTL = 768 * 3600;

export const randomId = (prefix: string): string => prefix + randomBytes(18).toString('base64url');

const unsupportedOperation = (): Reply => fail(405, '1 error occurred:\n\t* unsupported operation\n\n');

/** Vault duration: seconds as a number or "90", or Go-style "1h30m", "45s", "2d". */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Math.floor(v);
  if (typeof v !== 'string' || v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  let total = 0;
  const rest = v.replace(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g, (_all, n: string, unit: string) => {
    total += Number(n) * (units[unit] ?? 0);
    return '';
  });
  return rest === '' ? Math.floor(total) : undefined;
}

export class TokenStore {
  readonly #tokens = new Map<string, TokenEntry>();
  readonly #root: TokenEntry;

  constructor(rootToken: string) {
    this.#root = {
      id: rootToken,
      accessor: randomId(''),
      policies: ['root'],
      path: 'auth/token/root',
      displayName: 'root',
      meta: null,
      issuedAt: Date.now(),
      ttl: 0,
      expiresAt: undefined,
      renewable: false,
      orphan: true,
    };
  }

  issue(e: NewToken): TokenEntry {
    const issuedAt = Date.now();
    const entry: TokenEntry = {
      ...e,
      id: randomId('hvs.'),
      accessor: randomId(''),
      issuedAt,
      expiresAt: e.ttl > 0 ? issuedAt + e.ttl * 1000 : undefined,
    };
    this.#tokens.set(entry.id, entry);
    return entry;
  }

  /** The live token, or undefined when unknown, revoked or past its TTL. */
  lookup(id: string | undefined): TokenEntry | undefined {
    if (id === undefined || id === '') return undefined;
    if (id === this.#root.id) return this.#root;
    const entry = this.#tokens.get(id);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.#tokens.delete(entry.id); // Vault revokes a token when its TTL runs out
      return undefined;
    }
    return entry;
  }

  /** Revokes every token except the root token. */
  revokeAll(): void {
    this.#tokens.clear();
  }

  approleLogin(config: AppRoleConfig, input: Record<string, unknown>, op: Operation): Reply {
    if (op !== 'write') return unsupportedOperation();
    if (typeof input.role_id !== 'string' || input.role_id === '') return fail(400, 'missing role_id');
    if (input.role_id !== config.roleId || input.secret_id !== config.secretId) {
      return fail(400, 'invalid role or secret ID');
    }
    const entry = this.issue({
      policies: ['default'],
      path: 'auth/approle/login',
      displayName: 'approle',
      meta: { role_name: 'test-role' },
      ttl: config.tokenTtlSeconds ?? DEFAULT_TTL,
      renewable: config.renewable ?? true,
      orphan: true,
    });
    return this.#authReply(entry, 'approle');
  }

  /** auth/token/{lookup-self,renew-self,create,revoke-self} for the (already authenticated) token `self`. */
  route(self: TokenEntry, path: string, op: Operation, body: Record<string, unknown>): Reply {
    if (path === 'auth/token/lookup-self' && op === 'read') return this.#lookupSelf(self);
    if (path === 'auth/token/renew-self' && op === 'write') {
      if (self.expiresAt === undefined || !self.renewable) return fail(400, 'lease is not renewable');
      const increment = parseDuration(body.increment) || self.ttl;
      self.expiresAt = Date.now() + Math.min(increment, DEFAULT_TTL) * 1000;
      return this.#authReply(self, 'token');
    }
    if (path === 'auth/token/create' && op === 'write') {
      const asked = Array.isArray(body.policies) ? body.policies.map(String) : undefined;
      const withDefault = asked?.includes('root') || body.no_default_policy === true ? [] : ['default'];
      const meta = typeof body.meta === 'object' && body.meta !== null ? (body.meta as Record<string, string>) : null;
      const entry = this.issue({
        policies: asked === undefined ? self.policies : [...new Set([...withDefault, ...asked])].sort(),
        path,
        displayName: typeof body.display_name === 'string' ? `token-${body.display_name}` : 'token',
        meta,
        ttl: parseDuration(body.ttl) || DEFAULT_TTL,
        renewable: body.renewable !== false,
        orphan: body.no_parent === true,
      });
      return this.#authReply(entry, 'token');
    }
    if (path === 'auth/token/revoke-self' && op === 'write') {
      this.#tokens.delete(self.id); // the root token of the test server stays valid
      return { status: 204 };
    }
    return /^auth\/token\/(lookup-self|renew-self|create|revoke-self)$/.test(path)
      ? unsupportedOperation()
      : fail(404, '1 error occurred:\n\t* unsupported path\n\n');
  }

  #lookupSelf(self: TokenEntry): Reply {
    const remaining = self.expiresAt === undefined ? 0 : Math.max(0, Math.floor((self.expiresAt - Date.now()) / 1000));
    const data = {
      accessor: self.accessor,
      creation_time: Math.floor(self.issuedAt / 1000),
      creation_ttl: self.ttl,
      display_name: self.displayName,
      entity_id: '',
      expire_time: self.expiresAt === undefined ? null : new Date(self.expiresAt).toISOString(),
      explicit_max_ttl: 0,
      id: self.id,
      ...(self === this.#root ? {} : { issue_time: new Date(self.issuedAt).toISOString() }),
      meta: self.meta,
      num_uses: 0,
      orphan: self.orphan,
      path: self.path,
      policies: self.policies,
      renewable: self.renewable,
      ttl: remaining,
      type: 'service',
    };
    return { status: 200, body: envelope({ data, mountType: 'token' }) };
  }

  #authReply(e: TokenEntry, mountType: string): Reply {
    const auth = {
      client_token: e.id,
      accessor: e.accessor,
      policies: e.policies,
      token_policies: e.policies,
      metadata: e.meta,
      lease_duration: e.expiresAt === undefined ? 0 : Math.max(0, Math.round((e.expiresAt - Date.now()) / 1000)),
      renewable: e.renewable,
      entity_id: '',
      token_type: 'service',
      orphan: e.orphan,
      mfa_requirement: null,
      num_uses: 0,
    };
    return { status: 200, body: envelope({ auth, mountType }) };
  }
}
