import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyIp, formatIp, parseAllowlist, parseHost, parseIp, TargetNotAllowedError, TargetPolicy } from './net-policy.ts';

const ip = (text: string) => {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(`not an address: ${text}`);
  return parsed;
};

describe('parseHost', () => {
  it.each([
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0X7F000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0177.0.0.01', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
    ['1.2.3.0x', '1.2.3.0'],
    ['169.254.43518', '169.254.169.254'],
    ['[::1]', '::1'],
    ['[0:0:0:0:0:ffff:7f00:1]', '::ffff:7f00:1'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['[FD00:EC2::254]', 'fd00:ec2::254'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible, not mapped (ipaddr.js alone would read ::ffff:102:304)
  ])('reads %s as the address %s', (spelling, canonical) => {
    const h = parseHost(spelling);
    expect(h.kind).toBe('ip');
    if (h.kind === 'ip') expect(formatIp(h.ip)).toBe(canonical);
  });

  it.each(['1.2.3.4.5', '256.0.0.1', '0x100000000', '08.0.0.1', '', '.', 'a..b', '::g', 'a.1', '::ffff:0x7f.0.0.1', 'evil.example/x', 'user@127.0.0.1', 'a%2e1', 'loc\nalhost', '127.0.0.1#x'])('refuses %j as invalid', (spelling) => {
    expect(parseHost(spelling).kind).toBe('invalid');
  });

  it.each([['Example.COM.', 'example.com'], ['1.2.3.a', '1.2.3.a'], ['localhost', 'localhost']])('reads %s as the name %s', (spelling, name) => {
    expect(parseHost(spelling)).toEqual({ kind: 'name', name });
  });

  it('agrees with the WHATWG URL parser on every IPv4 spelling (property)', () => {
    const part = (n: number, style: number): string => (style === 0 ? String(n) : style === 1 ? `0x${n.toString(16)}` : `0${n.toString(8)}`);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 4, maxLength: 4 }), fc.boolean(), (value, count, styles, dot) => {
        const bytes = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
        const parts = bytes.slice(0, count - 1).map((b, i) => part(b, styles[i] ?? 0));
        const rest = bytes.slice(count - 1).reduce((acc, b) => acc * 256 + b, 0);
        parts.push(part(rest, styles[count - 1] ?? 0));
        const spelling = parts.join('.') + (dot ? '.' : '');
        const whatwg = new URL(`https://${spelling}/`).hostname;
        const ours = parseIp(spelling);
        expect(ours).not.toBeNull();
        expect(formatIp(ours!)).toBe(whatwg);
      }),
      { numRuns: 2_000 },
    );
  });

  it('agrees with the WHATWG URL parser on IPv6 literals (property)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const whatwg = new URL(`https://[${text}]/`).hostname.slice(1, -1);
        expect(formatIp(ip(text))).toBe(whatwg);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('classifyIp', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this-network'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['169.254.169.254', 'link-local'],
    ['192.0.0.170', 'ietf-protocol'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fd00:ec2::254', 'unique-local'],
    ['fc00::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['100::1', 'discard'],
    ['64:ff9b:1::a00:1', 'translation'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:0:a00:1', 'private'],
    ['::127.0.0.1', 'loopback'],
    ['::10.0.0.1', 'private'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:a9fe:a9fe::1', 'link-local'],
    ['2001:0:4136:e378:8000:63bf:f5ff:fffe', 'private'], // Teredo client 10.0.0.1 (bit-inverted)
    ['2001:0:7f00:1::', 'loopback'], // Teredo server 127.0.0.1
    ['4000::1', 'reserved'],
  ])('%s is %s', (address, category) => {
    expect(classifyIp(ip(address))).toBe(category);
  });

  it.each(['93.184.216.34', '8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', '2001:4:112::1'])(
    '%s is global',
    (address) => {
      expect(classifyIp(ip(address))).toBe('global');
    },
  );
});

describe('TargetPolicy', () => {
  it('allows allowlisted CIDRs and hosts, and nothing else that is not global', () => {
    const policy = new TargetPolicy({ allowlist: ['10.1.0.0/16', '127.0.0.1', 'internal.example', '*.corp.example'] });
    expect(policy.check(ip('10.1.2.3'), 443).allowed).toBe(true);
    expect(policy.check(ip('10.2.0.1'), 443)).toEqual({ allowed: false, category: 'private' });
    expect(policy.check(ip('127.0.0.1'), 443).allowed).toBe(true);
    expect(policy.check(ip('::ffff:127.0.0.1'), 443).allowed).toBe(true);
    expect(policy.check(ip('127.0.0.2'), 443).allowed).toBe(false);
    expect(policy.isHostAllowlisted('INTERNAL.example.')).toBe(true);
    expect(policy.isHostAllowlisted('a.corp.example')).toBe(true);
    expect(policy.isHostAllowlisted('a.b.corp.example')).toBe(false);
    expect(policy.check(ip('8.8.8.8'), 443).allowed).toBe(true);
  });

  it("refuses the relay's own port on loopback and local addresses even when allowlisted", () => {
    let port: number | undefined = undefined;
    const policy = new TargetPolicy({ allowlist: ['127.0.0.0/8', '::1', '192.0.2.10', 'relay.local'], self: { ports: () => [port], addresses: ['192.0.2.10'] } });
    expect(policy.check(ip('127.0.0.1'), 8080).allowed).toBe(true);
    port = 8080;
    for (const a of ['127.0.0.1', '127.0.0.2', '::1', '0.0.0.0', '::', '::ffff:127.0.0.1', '192.0.2.10']) {
      expect(policy.check(ip(a), 8080), a).toEqual({ allowed: false, category: 'self' });
      expect(policy.check(ip(a), 8080, true), a).toEqual({ allowed: false, category: 'self' });
    }
    expect(policy.check(ip('127.0.0.1'), 8081).allowed).toBe(true);
  });

  it("refuses every port of the relay's own processes (the API's and the worker's metrics port), each once known", () => {
    let metricsPort: number | undefined = 0;
    const policy = new TargetPolicy({ allowlist: ['127.0.0.0/8', '::1'], self: { ports: () => [8080, metricsPort], addresses: [] } });
    expect(policy.check(ip('127.0.0.1'), 9464).allowed).toBe(true);
    expect(policy.check(ip('127.0.0.1'), 0).allowed).toBe(true);
    metricsPort = 9464;
    for (const port of [8080, 9464]) {
      expect(policy.check(ip('127.0.0.1'), port, true)).toEqual({ allowed: false, category: 'self' });
      expect(policy.check(ip('::1'), port)).toEqual({ allowed: false, category: 'self' });
    }
    expect(policy.check(ip('127.0.0.1'), 9465).allowed).toBe(true);
  });

    it('refuses a mixed DNS answer whole, naming the bad address', () => {
    const policy = new TargetPolicy({ allowlist: [] });
    expect(() => policy.assertAddresses('mixed.example', ['93.184.216.34', '10.0.0.1'], 443)).toThrow(TargetNotAllowedError);
    expect(() => policy.assertAddresses('mixed.example', ['93.184.216.34', '10.0.0.1'], 443)).toThrow(/10\.0\.0\.1, a private address/);
    expect(() => policy.assertAddresses('public.example', ['93.184.216.34', '2606:4700::1111'], 443)).not.toThrow();
  });

  it('reports bad allowlist entries', () => {
    expect(parseAllowlist(['10.0.0.0/33', 'a b', '1.2.3.4/8/1', 'ok.example', '::/0']).problems).toHaveLength(3);
    expect(() => new TargetPolicy({ allowlist: ['300.1.1.1'] })).toThrow(/TARGET_ALLOWLIST/);
  });
});
