import type { Redis } from 'ioredis';
import { openJson, sealJson, SealError } from '../crypto.ts';
import type { KeyRing } from '../crypto.ts';
import { StoreError } from '../errors.ts';
import { pingMasters } from '../redis.ts';
import { accountTag } from '../shards.ts';
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
  readonly #byAccount: boolean;

  /**
   * `byAccount` (QUEUE_SHARDS > 1): the keys of an account's documents and folders carry the account's hash tag
   * (`<prefix>:store:{<account>}:doc:accounts/<account>/…`), so that on a Cluster the store spreads over the
   * masters by account while one document and its account's folders stay in one slot; everything else (the
   * `accounts` folder, `_meta`) shares one tag. Without it the keys are exactly as before.
   */
  constructor(redis: Redis, ring: KeyRing, prefix: string, options: { byAccount?: boolean } = {}) {
    this.#redis = redis;
    this.#ring = ring;
    this.#prefix = `${prefix}:store`;
    this.#byAccount = options.byAccount === true;
  }

  /** The hash-tag part of a path's keys ('' without byAccount). */
  #tag(path: string): string {
    if (!this.#byAccount) return '';
    const parts = path.split('/');
    return parts[0] === 'accounts' && parts.length >= 2 && parts[1] !== '' ? `${accountTag(parts[1] as string)}:` : '{store}:';
  }

  #docKey(path: string): string {
    return `${this.#prefix}:${this.#tag(path)}doc:${path}`;
  }

  #dirKey(folder: string): string {
    return `${this.#prefix}:${this.#tag(folder)}dir:${folder}`;
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
    // Folders in another slot than the document (the `accounts` folder, with byAccount) are indexed first, on
    // their own: a listing may then name an account whose first write failed, never miss one that exists.
    const apart: Array<[string, string]> = [];
    for (let i = parts.length - 1; i >= 1; i--) {
      const folder = parts.slice(0, i).join('/');
      const name = i === parts.length - 1 ? (parts[i] as string) : `${parts[i]}/`;
      if (this.#tag(folder) === this.#tag(path)) {
        dirKeys.push(this.#dirKey(folder));
        names.push(name);
      } else {
        apart.push([this.#dirKey(folder), name]);
      }
    }
    for (const [key, name] of apart) await this.#call(() => this.#redis.sadd(key, name));
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
    if (this.#tag(parent) !== this.#tag(path)) {
      // Not one slot (a document directly under `accounts`, with byAccount): two steps, the document first.
      await this.#call(() => this.#redis.del(this.#docKey(path)));
      await this.#call(() => this.#redis.srem(this.#dirKey(parent), path.slice(slash + 1)));
      return;
    }
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
      // On a Cluster, one master answering is enough: documents on a master that does not are unavailable alone.
      if ((await pingMasters(this.#redis)).answered === 0) throw new Error('no answer');
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
