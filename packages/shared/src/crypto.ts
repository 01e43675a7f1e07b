import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * AES-256-GCM sealing of secrets at rest (embedded store documents, job payloads, job results).
 * A sealed value names the key that sealed it, so MASTER_KEY can be rotated: new values use the current
 * key, old values still open with a previous key until they expire or are rewritten.
 *
 * Format: `s1.<keyId>.<iv>.<ciphertext+tag>` (base64url parts). `aad` binds a value to its place
 * (a store path, a job id) so that a sealed value moved elsewhere fails to open.
 */
export interface KeyRing {
  readonly currentId: string;
  /** KeyObjects made once: handing a raw Buffer to createCipheriv builds a new KeyObject on every call. */
  readonly keys: ReadonlyMap<string, KeyObject>;
}

const PREFIX = 's1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export function createKeyRing(current: Buffer, previous: readonly Buffer[] = []): KeyRing {
  if (current.length !== 32) throw new Error('master key must be 32 bytes');
  const keys = new Map<string, KeyObject>();
  keys.set(keyId(current), createSecretKey(current));
  for (const k of previous) if (!keys.has(keyId(k))) keys.set(keyId(k), createSecretKey(k));
  return Object.freeze({ currentId: keyId(current), keys });
}

// Random IVs are drawn from a pool filled 4 KB at a time (one CSPRNG call per 341 seals instead of one each);
// every IV is used once. A random 96-bit IV per message is what NIST SP 800-38D §8.2.2 allows.
const IV_POOL_BYTES = IV_BYTES * 341;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;

function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

export function sealBuffer(ring: KeyRing, plaintext: Buffer, aad: string): string {
  const key = ring.keys.get(ring.currentId);
  if (key === undefined) throw new Error('key ring has no current key');
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return `${PREFIX}.${ring.currentId}.${iv.toString('base64url')}.${ct.toString('base64url')}`;
}

export class SealError extends Error {
  readonly code = 'seal_invalid';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SealError';
  }
}

export function openBuffer(ring: KeyRing, sealed: string, aad: string): Buffer {
  const parts = sealed.split('.');
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new SealError('not a sealed value');
  const [, kid, ivPart, ctPart] = parts as [string, string, string, string];
  const key = ring.keys.get(kid);
  if (key === undefined) throw new SealError(`sealed with unknown key ${kid}`);
  const iv = Buffer.from(ivPart, 'base64url');
  const data = Buffer.from(ctPart, 'base64url');
  if (iv.length !== IV_BYTES || data.length < TAG_BYTES) throw new SealError('sealed value is truncated');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    throw new SealError('sealed value failed authentication', { cause });
  }
}

export function sealJson(ring: KeyRing, value: unknown, aad: string): string {
  return sealBuffer(ring, Buffer.from(JSON.stringify(value)), aad);
}

export function openJson(ring: KeyRing, sealed: string, aad: string): unknown {
  return JSON.parse(openBuffer(ring, sealed, aad).toString('utf8'));
}

/**
 * Development convenience: reads the master key from `path`, creating it (mode 0600) when absent.
 * Creation uses O_EXCL so that an API and a worker starting together end up with the same key.
 */
export function loadOrCreateDevKey(path: string): { key: Buffer; created: boolean } {
  mkdirSync(dirname(path), { recursive: true });
  try {
    writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
    return { key: readKeyFile(path), created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { key: readKeyFile(path), created: false };
  }
}

function readKeyFile(path: string): Buffer {
  const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${path} does not hold a 32-byte base64 key`);
  return key;
}

/**
 * The master key from the configuration; in development, when MASTER_KEY is unset, a generated key kept in
 * MASTER_KEY_FILE (default `.data/master.key` at the repository root, git-ignored). Production requires
 * MASTER_KEY (enforced by loadConfig).
 */
export function resolveMasterKey(config: {
  MASTER_KEY: Buffer | undefined;
  MASTER_KEY_FILE: string | undefined;
}): { key: Buffer; devKeyFile?: string; created?: boolean } {
  if (config.MASTER_KEY !== undefined) return { key: config.MASTER_KEY };
  const file = config.MASTER_KEY_FILE ?? fileURLToPath(new URL('../../../.data/master.key', import.meta.url));
  const { key, created } = loadOrCreateDevKey(file);
  return { key, devKeyFile: file, created };
}
