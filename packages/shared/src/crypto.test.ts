import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createKeyRing, loadOrCreateDevKey, openBuffer, openJson, sealBuffer, sealJson, SealError } from './crypto.ts';

describe('sealing', () => {
  const ring = createKeyRing(randomBytes(32));

  it('round-trips bytes and never contains the plaintext', () => {
    const secret = Buffer.from('-----BEGIN PRIVATE KEY----- very secret');
    const sealed = sealBuffer(ring, secret, 'path/a');
    expect(sealed).not.toContain('PRIVATE');
    expect(Buffer.from(sealed.split('.')[3] ?? '', 'base64url').includes(secret)).toBe(false);
    expect(openBuffer(ring, sealed, 'path/a')).toEqual(secret);
  });

  it('refuses a value moved to another place (aad) or tampered with', () => {
    const sealed = sealJson(ring, { a: 1 }, 'here');
    expect(() => openJson(ring, sealed, 'there')).toThrow(SealError);
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[3] ?? '', 'base64url');
    ct[0] = (ct[0] ?? 0) ^ 1;
    parts[3] = ct.toString('base64url');
    expect(() => openJson(ring, parts.join('.'), 'here')).toThrow(SealError);
  });

  it('opens values sealed under a previous key after rotation, and seals with the new one', () => {
    const oldKey = randomBytes(32);
    const before = sealJson(createKeyRing(oldKey), 'x', 'p');
    const rotated = createKeyRing(randomBytes(32), [oldKey]);
    expect(openJson(rotated, before, 'p')).toBe('x');
    expect(sealJson(rotated, 'y', 'p').split('.')[1]).toBe(rotated.currentId);
    expect(() => openJson(createKeyRing(randomBytes(32)), before, 'p')).toThrow(SealError);
  });
});

describe('loadOrCreateDevKey', () => {
  it('creates a 32-byte key once and then reads the same key', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'key-')), 'nested', 'master.key');
    const first = loadOrCreateDevKey(file);
    const second = loadOrCreateDevKey(file);
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.key.equals(first.key)).toBe(true);
    expect(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')).toHaveLength(32);
  });
});
