import { fileURLToPath } from 'node:url';
import { loadOrCreateDevKey } from '@mtls-relay/shared/crypto';

/**
 * Development only: the HS256 secret used when no credentials are configured, kept (mode 0600) in
 * AUTH_DEV_SECRET_FILE, default `.data/auth-jwt.secret` at the repository root (git-ignored). The API,
 * `npm start` and `npm run token` all read the same file, so tokens minted by one are accepted by the other.
 */
export function devJwtSecret(config: { AUTH_DEV_SECRET_FILE: string | undefined }): { secret: string; file: string; created: boolean } {
  const file = config.AUTH_DEV_SECRET_FILE ?? fileURLToPath(new URL('../../../../.data/auth-jwt.secret', import.meta.url));
  const { key, created } = loadOrCreateDevKey(file);
  return { secret: key.toString('base64'), file, created };
}
