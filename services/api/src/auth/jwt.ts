/**
 * Bearer JWT verification (jose). HS* tokens are checked only against AUTH_JWT_SECRET and asymmetric ones
 * only against public keys (configured or from the JWKS), so a token cannot pick its key type (no HS/RS
 * confusion); "none" is never allowed. The roles claim must hold the admin or the LPA role; the accounts
 * claim limits the accounts ("*" for all, missing for none).
 */
import type { KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyOptions } from 'jose';
import { RelayError } from '@mtls-relay/shared/errors';
import type { Permission, Principal } from './access.ts';
import type { RemoteJwks } from './jwks.ts';

export interface PublicKeyEntry {
  kid: string | undefined;
  key: KeyObject;
}

export interface JwtSettings {
  secret: string | undefined;
  publicKeys: PublicKeyEntry[];
  jwks: RemoteJwks | undefined;
  algorithms: readonly string[];
  issuer: string | undefined;
  audience: readonly string[];
  clockSkewSeconds: number;
  rolesClaim: string;
  accountsClaim: string;
  adminRole: string;
  lpaRole: string;
}

const ALL: ReadonlySet<Permission> = new Set(['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL']);

/** Which asymmetric key types an algorithm can be verified with. */
function keyTypesFor(alg: string): string[] {
  if (alg.startsWith('RS')) return ['rsa'];
  if (alg.startsWith('PS')) return ['rsa', 'rsa-pss'];
  if (alg.startsWith('ES')) return ['ec'];
  if (alg === 'EdDSA') return ['ed25519', 'ed448'];
  return [];
}

function unauthenticated(detail: string, cause?: unknown): RelayError {
  return new RelayError('unauthenticated', detail, cause === undefined ? {} : { cause });
}

/** A safe, specific reason for a refused token (never the token or its claims' values). */
function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === 'nbf' ? 'the token is not valid yet' : `the token's ${err.claim} claim is missing or not accepted`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'the token algorithm is not allowed';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return 'no known key matches the token';
  if (err instanceof errors.JWKSTimeout) return 'the token keys could not be fetched in time';
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'the token is malformed';
  return 'the token could not be verified';
}

function isClaimError(err: unknown): boolean {
  return err instanceof errors.JWTExpired || err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTInvalid;
}

function stringList(value: unknown, claim: string): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return value.split(/[\s,]+/).filter((s) => s !== '');
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw unauthenticated(`the token's ${claim} claim must be a string or an array of strings`);
}

// A caller reuses its token for many requests: remember a verified token (never a refused one) briefly, so
// that signature checking is not paid per request. Bounded; entries end at the token's exp or after a minute.
const CACHE_MS = 60_000;
const CACHE_ENTRIES = 10_000;

export class JwtVerifier {
  readonly #s: JwtSettings;
  readonly #options: JWTVerifyOptions;
  readonly #secret: Uint8Array | undefined;
  readonly #verified = new Map<string, { principal: Principal; until: number }>();

  constructor(settings: JwtSettings) {
    this.#s = settings;
    this.#secret = settings.secret === undefined ? undefined : new TextEncoder().encode(settings.secret);
    this.#options = {
      clockTolerance: settings.clockSkewSeconds,
      requiredClaims: ['exp'],
      ...(settings.issuer === undefined ? {} : { issuer: settings.issuer }),
      ...(settings.audience.length === 0 ? {} : { audience: [...settings.audience] }),
    };
  }

  /** The principal of a valid token; 401 for an invalid one, 403 for a valid one without an allowed role. */
  async verify(token: string): Promise<Principal> {
    const now = Date.now();
    const cached = this.#verified.get(token);
    if (cached !== undefined) {
      if (cached.until > now) return cached.principal;
      this.#verified.delete(token);
    }
    const { principal, exp } = await this.#verifyFully(token);
    const until = Math.min(now + CACHE_MS, exp * 1000 - this.#s.clockSkewSeconds * 1000);
    if (until > now) {
      if (this.#verified.size >= CACHE_ENTRIES) this.#verified.delete(this.#verified.keys().next().value as string);
      this.#verified.set(token, { principal, until });
    }
    return principal;
  }

  async #verifyFully(token: string): Promise<{ principal: Principal; exp: number }> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (cause) {
      throw unauthenticated('the token is malformed', cause);
    }
    if (typeof alg !== 'string' || !this.#s.algorithms.includes(alg)) throw unauthenticated('the token algorithm is not allowed');
    let payload: JWTPayload;
    try {
      payload = alg.startsWith('HS') ? await this.#verifyWithSecret(token, alg) : await this.#verifyWithPublicKeys(token, alg);
    } catch (err) {
      if (err instanceof RelayError) throw err;
      throw unauthenticated(reasonOf(err), err);
    }
    // exp is a required claim, so it is present here.
    return { principal: this.#principal(payload), exp: Number(payload.exp) };
  }

  async #verifyWithSecret(token: string, alg: string): Promise<JWTPayload> {
    if (this.#secret === undefined) throw unauthenticated('the token algorithm is not allowed');
    const { payload } = await jwtVerify(token, this.#secret, { ...this.#options, algorithms: [alg] });
    return payload;
  }

  async #verifyWithPublicKeys(token: string, alg: string): Promise<JWTPayload> {
    const kid = decodeProtectedHeader(token).kid;
    const types = keyTypesFor(alg);
    const candidates = this.#s.publicKeys.filter(
      (k) => types.includes(k.key.asymmetricKeyType ?? '') && (k.kid === undefined || kid === undefined || k.kid === kid),
    );
    let lastError: unknown = new errors.JWKSNoMatchingKey();
    for (const { key } of candidates) {
      try {
        return (await jwtVerify(token, key, { ...this.#options, algorithms: [alg] })).payload;
      } catch (err) {
        if (isClaimError(err)) throw err;
        lastError = err;
      }
    }
    if (this.#s.jwks !== undefined) return (await jwtVerify(token, this.#s.jwks.getKey, { ...this.#options, algorithms: [alg] })).payload;
    throw lastError;
  }

  #principal(payload: JWTPayload): Principal {
    const roles = stringList(payload[this.#s.rolesClaim], this.#s.rolesClaim);
    const accounts = stringList(payload[this.#s.accountsClaim], this.#s.accountsClaim);
    const id = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub.slice(0, 128) : 'jwt';
    if (!roles.includes(this.#s.adminRole) && !roles.includes(this.#s.lpaRole)) {
      throw new RelayError('forbidden', `the token holds neither the ${this.#s.adminRole} nor the ${this.#s.lpaRole} role`);
    }
    return { kind: 'jwt', id, permissions: ALL, accounts: accounts.includes('*') ? '*' : new Set(accounts) };
  }
}
