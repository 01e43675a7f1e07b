import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { bootstrap } from './bootstrap.ts';
import type { ProcessLike } from './bootstrap.ts';
import { parseIp } from './net-policy.ts';

class Exit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

/**
 * A process for bootstrap to act on: exit throws (so nothing after it runs) unless `returning` (an exit
 * inside a promise chain), and signal listeners are kept to be fired.
 */
function fakeProcess(env: Record<string, string | undefined>, returning = false) {
  const exits: number[] = [];
  const listeners = new Map<string, () => void>();
  let stderr = '';
  const proc: ProcessLike = {
    env,
    exit: (code) => {
      exits.push(code);
      if (returning) return undefined as never;
      throw new Exit(code);
    },
    once: (signal, listener) => listeners.set(signal, listener),
    stderr: { write: (text) => (stderr += text) },
  };
  return { proc, exits, listeners, stderr: () => stderr };
}

const goodEnv = () => ({ MASTER_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent', TARGET_ALLOWLIST: '127.0.0.0/8' });

describe('bootstrap', () => {
  it('exits 78 on a bad setting, naming the service and the variable on stderr', () => {
    const p = fakeProcess({ PORT: 'eighty' });
    expect(() => bootstrap('worker', p.proc)).toThrow(Exit);
    expect(p.exits).toEqual([78]);
    expect(p.stderr()).toMatch(/^mtls-relay worker: invalid configuration:\n {2}PORT: /);
  });

  it('gives the parsed configuration, a logger, a key ring and an instance id', () => {
    const b = bootstrap('api', fakeProcess(goodEnv()).proc);
    expect(b.config.TARGET_ALLOWLIST).toEqual(['127.0.0.0/8']);
    expect(b.instanceId).toMatch(/^[0-9a-f]{8}$/);
    expect(b.ring.currentId).toBeTypeOf('string');
    expect(b.logger.level).toBe('silent');
  });

  it('configError exits 78 and fatal exits 1', () => {
    const p = fakeProcess(goodEnv());
    const b = bootstrap('api', p.proc);
    expect(() => b.configError(new Error('AUTH_JWKS_URL: not reachable'))).toThrow(Exit);
    expect(() => b.fatal(new Error('down'), 'Redis is not reachable')).toThrow(Exit);
    expect(p.exits).toEqual([78, 1]);
    expect(p.stderr()).toBe('mtls-relay api: AUTH_JWKS_URL: not reachable\n');
  });

  it("the target policy refuses the relay's own port on loopback and on this machine's addresses, even when allowlisted", () => {
    let port: number | undefined = undefined;
    const policy = bootstrap('api', fakeProcess(goodEnv()).proc).targetPolicy(() => [port]);
    const loopback = parseIp('127.0.0.1')!;
    expect(policy.check(loopback, 8080).allowed).toBe(true);
    port = 8080;
    expect(policy.check(loopback, 8080)).toEqual({ allowed: false, category: 'self' });
    expect(policy.check(loopback, 8081).allowed).toBe(true);
    const own = Object.values(networkInterfaces()).flatMap((l) => l ?? []).map((i) => parseIp(i.address)).filter((ip) => ip !== null);
    for (const ip of own) expect(policy.check(ip, 8080).category, ip.toString()).toBe('self');
    expect(policy.check(parseIp('10.0.0.1')!, 443)).toEqual({ allowed: false, category: 'private' });
  });

  it('on SIGTERM: shutting down, then exit 0 when the shutdown was clean, 1 when not', async () => {
    for (const clean of [true, false]) {
      const p = fakeProcess(goodEnv(), true);
      const b = bootstrap('worker', p.proc);
      let release: (clean: boolean) => void = () => undefined;
      b.onSignals(() => new Promise<boolean>((resolve) => (release = resolve)));
      expect([...p.listeners.keys()].sort()).toEqual(['SIGINT', 'SIGTERM']);
      expect(b.isShuttingDown()).toBe(false);
      p.listeners.get('SIGTERM')?.();
      expect(b.isShuttingDown()).toBe(true);
      expect(p.exits).toEqual([]);
      release(clean);
      await expect.poll(() => p.exits).toEqual([clean ? 0 : 1]);
    }
  });
});
