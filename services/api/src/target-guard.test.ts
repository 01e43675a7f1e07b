import { describe, expect, it } from 'vitest';
import type { RelayError } from '@mtls-relay/shared/errors';
import { TargetPolicy } from '@mtls-relay/shared/net-policy';
import { createHostResolver } from '@mtls-relay/shared/target-dns';
import type { ResolvedAddress } from '@mtls-relay/shared/target-dns';
import { parseTargetUrl } from '@mtls-relay/shared/url';
import { createTargetGuard } from './target-guard.ts';

const url = (raw: string) => parseTargetUrl(raw, { allowHttp: false });

describe('createTargetGuard', () => {
  const answers: Record<string, string[]> = { 'public.example': ['93.184.216.34'], 'private.example': ['10.0.0.1'], 'both.example': ['93.184.216.34', 'fd00::1'], 'burst.example': ['93.184.216.35'] };
  let queries = 0;
  const resolve = async (name: string): Promise<ResolvedAddress[]> => {
    queries += 1;
    const a = answers[name];
    if (a === undefined) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const guard = createTargetGuard(new TargetPolicy({ allowlist: ['127.0.0.1'], self: { ports: () => [8080], addresses: [] } }), resolve);

  const refusal = async (raw: string): Promise<RelayError | undefined> => {
    try {
      await guard(url(raw));
      return undefined;
    } catch (err) {
      return err as RelayError;
    }
  };

  it.each(['https://10.0.0.1/', 'https://0xa9fea9fe/', 'https://[::ffff:10.0.0.1]/', 'https://private.example/', 'https://both.example/', 'https://127.0.0.1:8080/'])(
    'refuses %s with target_not_allowed (403)',
    async (raw) => {
      const err = await refusal(raw);
      expect(err?.code).toBe('target_not_allowed');
      expect(err?.status).toBe(403);
    },
  );

  it('allows public and allowlisted targets, and leaves names that do not resolve to the worker', async () => {
    for (const raw of ['https://public.example/', 'https://8.8.8.8/', 'https://127.0.0.1:8443/', 'https://nowhere.example/']) {
      expect(await refusal(raw), raw).toBeUndefined();
    }
  });

  it('refuses localhost names (loopback without asking DNS) unless loopback is allowlisted', async () => {
    const strict = createTargetGuard(new TargetPolicy({ allowlist: [] }), createHostResolver());
    for (const raw of ['https://localhost/', 'https://LOCALHOST./', 'https://metadata.localhost/']) {
      await expect(strict(url(raw)), raw).rejects.toMatchObject({ code: 'target_not_allowed' });
    }
    const loopbackAllowed = createTargetGuard(new TargetPolicy({ allowlist: ['127.0.0.1', '::1'] }), createHostResolver());
    await expect(loopbackAllowed(url('https://localhost:8443/'))).resolves.toBeUndefined();
  });

  it('caches answers briefly, so a burst to one host costs one lookup', async () => {
    queries = 0;
    for (let i = 0; i < 5; i++) await guard(url('https://burst.example/x'));
    expect(queries).toBe(1);
  });
});
