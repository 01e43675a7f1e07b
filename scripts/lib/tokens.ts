import { SignJWT } from 'jose';

export interface MintOptions {
  /** The HS256 secret (AUTH_JWT_SECRET, or the development secret). */
  secret: string;
  roles: readonly string[];
  /** Account ids, or ["*"] for all. */
  accounts: readonly string[];
  ttlSeconds: number;
  subject?: string | undefined;
  issuer?: string | undefined;
  audience?: readonly string[] | undefined;
  rolesClaim?: string | undefined;
  accountsClaim?: string | undefined;
}

/** An HS256 Bearer token the relay accepts (operators: `npm run token`; development: `npm start`). */
export async function mintToken(o: MintOptions): Promise<string> {
  const jwt = new SignJWT({ [o.rolesClaim ?? 'roles']: [...o.roles], [o.accountsClaim ?? 'accounts']: [...o.accounts] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + o.ttlSeconds)
    .setSubject(o.subject ?? 'operator');
  if (o.issuer !== undefined) jwt.setIssuer(o.issuer);
  if (o.audience !== undefined && o.audience.length > 0) jwt.setAudience([...o.audience]);
  return jwt.sign(new TextEncoder().encode(o.secret));
}

/** "90", "90s", "15m", "1h", "7d" → seconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)\s*([smhd]?)$/i.exec(text.trim());
  if (m === null) return undefined;
  const unit = { '': 1, s: 1, m: 60, h: 3_600, d: 86_400 }[(m[2] ?? '').toLowerCase() as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(m[1]) * unit;
  return seconds > 0 ? seconds : undefined;
}
