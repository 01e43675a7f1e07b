import { describe, expect, it } from 'vitest';
import { TargetPolicy } from '@mtls-relay/shared/net-policy';
import type { ResolvedAddress } from '@mtls-relay/shared/target-dns';
import { createConnectGuard } from './guarded-lookup.ts';

const answers: Record<string, ResolvedAddress[]> = {
  'public.example': [{ address: '93.184.216.34', family: 4 }, { address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 }],
  'private.example': [{ address: '10.0.0.1', family: 4 }],
  'mixed.example': [{ address: '93.184.216.34', family: 4 }, { address: '169.254.169.254', family: 4 }],
  'mapped.example': [{ address: '::ffff:169.254.169.254', family: 6 }],
  'loop.example': [{ address: '127.0.0.1', family: 4 }],
};
const resolve = async (name: string): Promise<ResolvedAddress[]> => {
  const a = answers[name];
  if (a === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  return a;
};

type Lookup = (host: string, options: object, cb: (err: NodeJS.ErrnoException | null, address?: unknown, family?: number) => void) => void;

function call(lookup: Lookup, host: string, options: object): Promise<{ err: NodeJS.ErrnoException | null; address?: unknown; family?: number }> {
  return new Promise((resolveCall) => lookup(host, options, (err, address, family) => resolveCall({ err, address, family })));
}

describe('createConnectGuard', () => {
  const policy = new TargetPolicy({ allowlist: ['127.0.0.1'], self: { ports: () => [8080], addresses: [] } });
  const guard = createConnectGuard(policy, resolve);
  const lookup = guard.lookup(443) as unknown as Lookup;

  it('answers the single-address form with the first allowed address and its family', async () => {
    expect(await call(lookup, 'public.example', {})).toEqual({ err: null, address: '93.184.216.34', family: 4 });
    expect(await call(lookup, 'public.example', { family: 6 })).toEqual({ err: null, address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 });
  });

  it('answers the all: true form with every address', async () => {
    const r = await call(lookup, 'public.example', { all: true });
    expect(r.err).toBeNull();
    expect(r.address).toEqual(answers['public.example']);
  });

  it.each(['private.example', 'mixed.example', 'mapped.example'])('refuses %s in both forms with ERR_RELAY_TARGET_NOT_ALLOWED', async (host) => {
    for (const options of [{}, { all: true }]) {
      const r = await call(lookup, host, options);
      expect(r.err?.code).toBe('ERR_RELAY_TARGET_NOT_ALLOWED');
      expect(r.address).toBeUndefined();
    }
  });

  it('passes DNS failures through unchanged', async () => {
    expect((await call(lookup, 'nowhere.example', { all: true })).err?.code).toBe('ENOTFOUND');
  });

  it("refuses an allowlisted address on the relay's own port", async () => {
    expect((await call(lookup, 'loop.example', {})).err).toBeNull();
    const selfLookup = guard.lookup(8080) as unknown as Lookup;
    expect((await call(selfLookup, 'loop.example', {})).err?.code).toBe('ERR_RELAY_TARGET_NOT_ALLOWED');
  });

  it('checks IP literals, which net.connect dials without a lookup', () => {
    expect(() => guard.checkLiteral('169.254.169.254', 443)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_TARGET_NOT_ALLOWED' }));
    expect(() => guard.checkLiteral('fd00:ec2::254', 443)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_TARGET_NOT_ALLOWED' }));
    expect(() => guard.checkLiteral('127.0.0.1', 8080)).toThrow(expect.objectContaining({ category: 'self' }));
    expect(() => guard.checkLiteral('127.0.0.1', 443)).not.toThrow();
    expect(() => guard.checkLiteral('public.example', 443)).not.toThrow();
  });
});
