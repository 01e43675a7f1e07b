/**
 * The SSRF acceptance table: private, link-local, metadata, reserved and embedded-IPv4 targets in every
 * spelling, and names that resolve to them through the test DNS server. Runs only inside a network
 * namespace with nothing but loopback (test/netns/namespace.ts), where those whole ranges are local and one
 * listener on `::` sees any connection to any of them: a refusal must come before any socket opens.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCA, issueCertificate } from '../../scripts/lib/pki.ts';
import { startMtlsTarget } from '../../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../../scripts/lib/mtls-target.ts';
import { startRelay } from '../support/relay.ts';
import type { Relay } from '../support/relay.ts';
import { startTestDns } from '../support/resolver.ts';
import type { TestDns } from '../support/resolver.ts';
import { injectForward } from '../support/inject.ts';
import { startTrap } from '../support/trap.ts';
import type { Trap } from '../support/trap.ts';
import { assertIsolatedNetwork, PUBLIC_CONTROL } from './namespace.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('SSRF guard, full table (isolated network namespace)', () => {
  let relay: Relay;
  let dns: TestDns;
  let trap: Trap;
  let target: MtlsTarget;
  const account = `netns${randomBytes(3).toString('hex')}`;

  const forward = async (url: string): Promise<Answer> => {
    const res = await request(`${relay.api.url}/mtls/account/${account}`, {
      method: 'GET',
      headers: { ...relay.auth(), 'lp-forward-url': url },
    });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  };

  beforeAll(async () => {
    assertIsolatedNetwork();
    dns = await startTestDns();
    trap = await startTrap(['::']);
    const ca = await createCA('netns-target-ca');
    const serverCert = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server: serverCert, clientCa: ca.certPem, requireClientCert: false });
    relay = await startRelay({ targetCaPem: ca.certPem, env: { TARGET_DNS_SERVERS: dns.server } });

    dns.set('metadata.google.internal', ['169.254.169.254']);
    dns.set('private.test', ['10.0.0.1']);
    dns.set('rfc1918.test', ['192.168.1.1']);
    dns.set('cgnat.test', ['100.64.0.1']);
    dns.set('ula.test', ['fd00:ec2::254']);
    dns.set('mapped.test', ['::ffff:10.0.0.1']);
    dns.set('nat64.test', ['64:ff9b::a9fe:a9fe']);
    dns.set('mixed.test', [PUBLIC_CONTROL, '10.0.0.1']);
    dns.set('mixed-family.test', [PUBLIC_CONTROL, 'fd00::1']);
    dns.set('10.0.0.1.nip.test', ['10.0.0.1']);
    dns.set('public.test', [PUBLIC_CONTROL]);
    // DNS rebinding: public when the API checks (first query), private when the worker dials.
    dns.set('rebind.test', (n) => (n === 0 ? [PUBLIC_CONTROL] : ['10.0.0.1']));
    dns.set('rebind6.test', (n) => (n === 0 ? [PUBLIC_CONTROL] : ['fd00:ec2::254']));
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
    await trap?.close();
    await dns?.close();
  });

  const table = (p: number): Array<[string, string]> => [
    ['RFC 1918 10/8', `https://10.0.0.1:${p}/`],
    ['10/8, decimal', `https://167772161:${p}/`],
    ['10/8, hex', `https://0xa000001:${p}/`],
    ['10/8, octal', `https://012.0.0.1:${p}/`],
    ['10/8, short', `https://10.1:${p}/`],
    ['10/8, trailing dot', `https://10.0.0.1.:${p}/`],
    ['RFC 1918 172.16/12', `https://172.16.0.1:${p}/`],
    ['172.16/12, top', `https://172.31.255.254:${p}/`],
    ['RFC 1918 192.168/16', `https://192.168.1.1:${p}/`],
    ['192.168/16, hex parts', `https://0xc0.0xa8.1.1:${p}/`],
    ['shared 100.64/10', `https://100.64.0.1:${p}/`],
    ['metadata', `https://169.254.169.254:${p}/latest/meta-data/`],
    ['metadata, decimal', `https://2852039166:${p}/`],
    ['metadata, hex', `https://0xa9fea9fe:${p}/`],
    ['metadata, octal', `https://0251.0376.0251.0376:${p}/`],
    ['metadata, two parts', `https://169.254.43518:${p}/`],
    ['metadata, IPv4-mapped', `https://[::ffff:169.254.169.254]:${p}/`],
    ['metadata, IPv4-mapped hex', `https://[::ffff:a9fe:a9fe]:${p}/`],
    ['EC2 IPv6 metadata', `https://[fd00:ec2::254]:${p}/`],
    ['EC2 IPv6 metadata, long form', `https://[FD00:EC2:0:0:0:0:0:254]:${p}/`],
    ['unique local', `https://[fc00::1]:${p}/`],
    ['link-local IPv6', `https://[fe80::1]:${p}/`],
    ['site-local IPv6', `https://[fec0::1]:${p}/`],
    ['this network 0/8', `https://0.1.2.3:${p}/`],
    ['unspecified', `https://0.0.0.0:${p}/`],
    ['unspecified IPv6', `https://[::]:${p}/`],
    ['loopback not allowlisted', `https://127.0.0.2:${p}/`],
    ['benchmarking 198.18/15', `https://198.18.0.1:${p}/`],
    ['benchmarking, top', `https://198.19.255.254:${p}/`],
    ['reserved 240/4', `https://240.0.0.1:${p}/`],
    ['broadcast', `https://255.255.255.255:${p}/`],
    ['multicast', `https://224.0.0.1:${p}/`],
    ['multicast, SSDP', `https://239.255.255.250:${p}/`],
    ['multicast IPv6', `https://[ff02::1]:${p}/`],
    ['documentation 192.0.2/24', `https://192.0.2.1:${p}/`],
    ['IETF 192.0.0/24', `https://192.0.0.170:${p}/`],
    ['documentation IPv6', `https://[2001:db8::1]:${p}/`],
    ['IPv4-mapped 10/8', `https://[::ffff:10.0.0.1]:${p}/`],
    ['IPv4-compatible 10/8', `https://[::10.0.0.1]:${p}/`],
    ['NAT64 10/8', `https://[64:ff9b::10.0.0.1]:${p}/`],
    ['NAT64 metadata', `https://[64:ff9b::a9fe:a9fe]:${p}/`],
    ['local-use NAT64', `https://[64:ff9b:1::a00:1]:${p}/`],
    ['6to4 of 10.0.0.1', `https://[2002:a00:1::]:${p}/`],
    ['6to4 of metadata', `https://[2002:a9fe:a9fe::1]:${p}/`],
    ['Teredo client 10.0.0.1', `https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]:${p}/`],
    ['name → metadata', `https://metadata.google.internal:${p}/computeMetadata/v1/`],
    ['name → 10/8', `https://private.test:${p}/`],
    ['name → 192.168/16', `https://rfc1918.test:${p}/`],
    ['name → 100.64/10', `https://cgnat.test:${p}/`],
    ['name → unique local', `https://ula.test:${p}/`],
    ['name → IPv4-mapped 10/8', `https://mapped.test:${p}/`],
    ['name → NAT64 metadata', `https://nat64.test:${p}/`],
    ['name with an IP inside (nip.io style)', `https://10.0.0.1.nip.test:${p}/`],
    ['mixed public + private answer', `https://mixed.test:${p}/`],
    ['mixed answer across families', `https://mixed-family.test:${p}/`],
  ];

  it('control: the listener sees a direct connection to the metadata address and to an IPv6 ULA in this namespace', async () => {
    for (const host of ['169.254.169.254', 'fd00:ec2::254']) {
      await new Promise<void>((resolve, reject) => {
        const socket = connect({ host, port: trap.port });
        socket.on('connect', () => {
          socket.destroy();
          resolve();
        });
        socket.on('error', reject);
      });
    }
    await vi.waitFor(() => expect(trap.hits).toHaveLength(2));
    trap.reset();
  });

  it('refuses at least 40 spellings of non-global targets with 403 before enqueueing; the listener on every such address sees nothing', async () => {
    const cases = table(trap.port);
    expect(cases.length).toBeGreaterThanOrEqual(40);
    const refused: string[] = [];
    for (const [what, url] of cases) {
      const res = await forward(url);
      expect(res.status, `${what}: ${url} → ${res.body}`).toBe(403);
      expect(res.headers['content-type'], what).toBe('application/problem+json');
      expect(JSON.parse(res.body), what).toMatchObject({ code: 'target_not_allowed' });
      expect(res.headers['lp-job-id'], `${what}: refused before enqueueing`).toBeUndefined();
      refused.push(what);
    }
    expect(refused).toHaveLength(cases.length);
    expect(trap.hits).toEqual([]);
  });

  it('when a name is public at check time and private at dial time (DNS rebinding), the worker refuses at dial and nothing connects', async () => {
    for (const name of ['rebind.test', 'rebind6.test']) {
      const res = await forward(`https://${name}:${trap.port}/`);
      expect(res.status, `${name} → ${res.body}`).toBe(403);
      expect(res.headers['proxy-status']).toMatch(/error=destination_ip_prohibited/);
      expect(res.headers['lp-job-id'], 'the API check passed, so it was enqueued').toMatch(/^[0-9a-f-]{36}$/);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'target_not_allowed' });
    }
    expect(trap.hits).toEqual([]);
  });

  it('the worker refuses the same targets at dial time when a job bypasses the API check (written straight to the queue)', async () => {
    const p = trap.port;
    const urls = [
      `https://10.0.0.1:${p}/`,
      `https://169.254.169.254:${p}/`,
      `https://[fd00:ec2::254]:${p}/`,
      `https://[::ffff:10.0.0.1]:${p}/`,
      `https://[64:ff9b::a9fe:a9fe]:${p}/`,
      `https://[2002:a00:1::]:${p}/`,
      `https://0.0.0.0:${p}/`,
      `https://private.test:${p}/`,
      `https://metadata.google.internal:${p}/`,
      `https://mixed.test:${p}/`,
    ];
    expect(await injectForward(relay, account, urls)).toEqual(urls.map(() => 'target_not_allowed'));
    expect(trap.hits).toEqual([]);
  });

  it('relays a redirect to the metadata address or to http: without following it', async () => {
    for (const location of [`http://169.254.169.254:${trap.port}/latest/meta-data/`, `https://[fd00:ec2::254]:${trap.port}/`]) {
      target.setHandler((_req, res) => {
        res.statusCode = 302;
        res.setHeader('location', location);
        res.end();
      });
      const res = await forward(`https://127.0.0.1:${target.port}/go`);
      expect(res.status).toBe(302);
      expect(res.headers['location']).toBe(location);
    }
    expect(trap.hits).toEqual([]);
  });

  it('control: a public address (local in this namespace) is allowed, and its connection does reach the listener', async () => {
    trap.reset();
    for (const url of [`https://public.test:${trap.port}/`, `https://${PUBLIC_CONTROL}:${trap.port}/`]) {
      const res = await forward(url);
      expect(res.status, `${url} → ${res.body}`).toBe(502); // the listener closes at once: no TLS
    }
    expect(trap.hits.length).toBeGreaterThanOrEqual(2);
    expect(trap.hits.every((h) => h.startsWith(`::ffff:${PUBLIC_CONTROL}:`))).toBe(true);
  });
});
