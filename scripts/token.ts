// `npm run token -- --role admin --accounts 123 --ttl 1h`: prints a Bearer token (HS256) signed with
// AUTH_JWT_SECRET, or in development with the generated secret the API uses when nothing is configured.
// AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE / AUTH_ROLES_CLAIM / AUTH_ACCOUNTS_CLAIM are honoured, so the token
// passes the API's checks. Only the token goes to stdout (for $(npm run -s token)); notes go to stderr.
import { parseArgs } from 'node:util';
import { loadConfig } from '../packages/shared/src/config.ts';
import { devJwtSecret } from '../services/api/src/auth/dev-secret.ts';
import { mintToken, parseDuration } from './lib/tokens.ts';

const USAGE = `usage: npm run token -- [--role admin|lpa|…] [--accounts 123,456|*] [--ttl 1h] [--sub name]
  --role      role claim (repeatable; default: the admin role, AUTH_ADMIN_ROLE or "admin")
  --accounts  account ids the token may act on, comma-separated, or * for all (default: *)
  --ttl       lifetime: 90s, 15m, 1h, 7d (default: 1h)
  --sub       subject, shown in the relay's logs (default: operator)`;

function fail(message: string): never {
  console.error(`token: ${message}\n${USAGE}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        role: { type: 'string', multiple: true },
        accounts: { type: 'string', default: '*' },
        ttl: { type: 'string', default: '1h' },
        sub: { type: 'string', default: 'operator' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    });
  } catch (err) {
    return fail((err as Error).message);
  }
})();
if (values.help === true) {
  console.error(USAGE);
  process.exit(0);
}

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  fail((err as Error).message);
}
const ttlSeconds = parseDuration(values.ttl);
if (ttlSeconds === undefined) fail(`--ttl: not a duration: "${values.ttl}"`);
const accounts = values.accounts.split(',').map((s) => s.trim()).filter((s) => s !== '');
if (accounts.length === 0) fail('--accounts: give account ids or *');

let secret = config.AUTH_JWT_SECRET;
if (secret === undefined) {
  if (config.NODE_ENV === 'production') fail('AUTH_JWT_SECRET is not set (required to mint tokens in production)');
  const dev = devJwtSecret(config);
  secret = dev.secret;
  console.error(`token: AUTH_JWT_SECRET is not set; signed with the development secret in ${dev.file}`);
}

const token = await mintToken({
  secret,
  roles: values.role ?? [config.AUTH_ADMIN_ROLE],
  accounts,
  ttlSeconds,
  subject: values.sub,
  issuer: config.AUTH_JWT_ISSUER,
  audience: config.AUTH_JWT_AUDIENCE,
  rolesClaim: config.AUTH_ROLES_CLAIM,
  accountsClaim: config.AUTH_ACCOUNTS_CLAIM,
});
console.log(token);
