import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { KeyRing } from '../crypto.ts';
import { EmbeddedBackend } from './embedded-backend.ts';
import { VaultBackend } from './vault-backend.ts';
import { shardLayout } from '../shards.ts';
import type { DocumentBackend } from './types.ts';

export * from './types.ts';
export { CertificateStore, mappingId, withoutKey } from './certificate-store.ts';
export type { CertificateUpdate, NewCertificate } from './certificate-store.ts';
export { EmbeddedBackend } from './embedded-backend.ts';
export { VaultBackend } from './vault-backend.ts';
export type { VaultBackendOptions } from './vault-backend.ts';
export { inspectCertificate, isCurrentlyValid } from './pem.ts';
export { normalizeHostnamePattern, normalizeHostnames } from './hostnames.ts';

/** The backend the configuration asks for: Vault when VAULT_ADDR is set, else the embedded Redis store. */
export function createBackend(config: Readonly<Config>, deps: { redis: Redis; ring: KeyRing; logger: Logger }): DocumentBackend {
  if (config.storeKind === 'vault' && config.VAULT_ADDR !== undefined) {
    return new VaultBackend({
      addr: config.VAULT_ADDR,
      token: config.VAULT_TOKEN,
      roleId: config.VAULT_ROLE_ID,
      secretId: config.VAULT_SECRET_ID,
      mount: config.VAULT_KV_MOUNT,
      pathPrefix: config.VAULT_PATH_PREFIX,
      namespace: config.VAULT_NAMESPACE,
      timeoutMs: config.VAULT_TIMEOUT_MS,
      caFile: config.VAULT_CA_FILE,
      logger: deps.logger.child({ component: 'vault' }),
    });
  }
  // With QUEUE_SHARDS > 1 the documents spread over a Cluster by account (embedded-backend.ts).
  const shards = config.QUEUE_SHARDS ?? 1;
  return new EmbeddedBackend(deps.redis, deps.ring, shardLayout(config.QUEUE_PREFIX, shards).keyPrefix, { byAccount: shards > 1 });
}

/** Pub/sub channel on which store changes are announced (payload: the account id). */
export const storeChangeChannel = (prefix: string): string => `${prefix}:store-changed`;
