import type { Redis } from 'ioredis';
import { openJson, sealJson, SealError } from '../crypto.ts';
import type { KeyRing } from '../crypto.ts';
import { StoreError } from '../errors.ts';
import type { BackendHealth, DocumentBackend, StoredDocument } from './types.ts';

// Writes a new version atomically: optional check-and-set, then the sealed value and the folder indexes.
const WRITE_SCRIPT = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local cas = tonumber(ARGV[1])
if cas >= 0 and cas ~= cur then return -1 end
local nv = cur + 1
redis.call('HSET', KEYS[1], 'v', nv, 'd', ARGV[2])
for i = 2, #KEYS do redis.call('SADD', KEYS[i], ARGV[i + 1]) end
return nv
`;

const KEY_CHECK_PATH = '_meta/key-check';

/**
 * The embedded default store: the same documents as in Vault, kept in Redis, each one sealed with
 * AES-256-GCM under MASTER_KEY and bound to its path. Redis never sees a certificate or key in clear.
 */
export class EmbeddedBackend implements DocumentBackend {
  readonly kind = 'embedded' as const;
  readonly #redis: Redis;
  readonly #ring: KeyRing;
  readonly #prefix: string;

  constructor(redis: Redis, ring: KeyRing, prefix: string) {
    this.#redis = redis;
    this.#ring = ring;
    this.#prefix = `${prefix}:store`;
  }

  #docKey(path: string): string {
    return `${this.#prefix}:doc:${path}`;
  }

  #dirKey(folder: string): string {
    return `${this.#prefix}:dir:${folder}`;
  }

  async read(path: string): Promise<StoredDocument | null> {
    const [version, sealed] = await this.#call(() => this.#redis.hmget(this.#docKey(path), 'v', 'd'));
    if (version == null || sealed == null) return null;
    try {
      return { data: openJson(this.#ring, sealed, path) as Record<string, unknown>, version: Number(version) };
    } catch (err) {
      if (err instanceof SealError) {
        throw new StoreError('invalid', `stored document ${path} cannot be opened with the configured MASTER_KEY`, { cause: err });
      }
      throw err;
    }
  }

  async write(path: string, data: Record<string, unknown>, options: { cas?: number } = {}): Promise<number> {
    const sealed = sealJson(this.#ring, data, path);
    const parts = path.split('/');
    const dirKeys: string[] = [];
    const names: string[] = [];
    for (let i = parts.length - 1; i >= 1; i--) {
      dirKeys.push(this.#dirKey(parts.slice(0, i).join('/')));
      names.push(i === parts.length - 1 ? (parts[i] as string) : `${parts[i]}/`);
    }
    const result = await this.#call(() =>
      this.#redis.eval(WRITE_SCRIPT, 1 + dirKeys.length, this.#docKey(path), ...dirKeys, String(options.cas ?? -1), sealed, ...names),
    );
    const version = Number(result);
    if (version < 0) throw new StoreError('conflict', `${path} changed concurrently (check-and-set failed)`);
    return version;
  }

  async remove(path: string): Promise<void> {
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? '' : path.slice(0, slash);
    await this.#call(() =>
      this.#redis.multi().del(this.#docKey(path)).srem(this.#dirKey(parent), path.slice(slash + 1)).exec(),
    );
  }

  async list(folder: string): Promise<string[]> {
    const names = await this.#call(() => this.#redis.smembers(this.#dirKey(folder.replace(/\/$/, ''))));
    return names.sort();
  }

  async verify(): Promise<void> {
    await this.#call(() => this.#redis.ping());
    // A store written under another MASTER_KEY would fail on every read later; say so at start instead.
    const existing = await this.read(KEY_CHECK_PATH);
    if (existing === null) await this.write(KEY_CHECK_PATH, { createdAt: new Date().toISOString() });
  }

  async health(): Promise<BackendHealth> {
    try {
      await this.#redis.ping();
      return { ok: true, detail: 'redis' };
    } catch (err) {
      return { ok: false, detail: `redis: ${(err as Error).name}` };
    }
  }

  async close(): Promise<void> {
    // The Redis connection belongs to the caller.
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      throw new StoreError('unavailable', 'the embedded store (Redis) is unavailable', { cause });
    }
  }
}
