/**
 * Fuzzing on loopback only (the 10,000-case run over every address space is test/netns/fuzz-netns.test.ts):
 * spellings of 127.0.0.0/8, 0.0.0.0 and ::/::1 addresses and names the test DNS server maps to them,
 * with random LP-* header values, bodies, methods, account ids and framing. The allowlisted 127.0.0.1 is a
 * real target, so accepted cases are forwarded: what reaches it must never carry an LP-* or hop-by-hop
 * header. Listeners on the refused loopback addresses must see nothing.
 */
import fc from 'fast-check';
import { request } from 'undici';
import type { Arbitrary } from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HOP_BY_HOP } from '../packages/shared/src/http.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startTestDns } from './support/resolver.ts';
import type { TestDns } from './support/resolver.ts';
import { startTrap } from './support/trap.ts';
import type { Trap } from './support/trap.ts';
import {
  caseArb,
  checkStatus,
  failedJobCodes,
  ipv4Spelling,
  pendingForwardJobs,
  regressionCases,
  requestBytes,
  SEEDED_LOOPBACK_TARGETS,
  sendRaw,
} from './support/fuzz.ts';
import type { FuzzCase, TargetChoice } from './support/fuzz.ts';

const RUNS = Number(process.env['FUZZ_RUNS_LOOPBACK'] ?? 2_000);
const REFUSED_LOOPBACK = ['127.0.0.2', '127.0.0.3', '127.1.2.3', '127.255.255.254'];
const toU32 = (a: string): number => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);

// Only spellings whose dialled address is on loopback: IPv4 forms and IPv4-mapped IPv6 (never NAT64,
// 6to4 or Teredo here: a guard bug would then dial a routable IPv6 address).
const mapped = (value: number): Arbitrary<string> => {
  const dotted = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
  const hi = ((value >>> 16) & 0xffff).toString(16);
  const lo = (value & 0xffff).toString(16);
  return fc.constantFrom(`::ffff:${dotted}`, `::ffff:${hi}:${lo}`, `0:0:0:0:0:FFFF:${hi}:${lo}`);
};

const loopbackTargets: Arbitrary<TargetChoice> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...REFUSED_LOOPBACK).chain((a) => fc.oneof(ipv4Spelling(toU32(a)), mapped(toU32(a)))).map((host) => ({ host, expect: 'refuse' as const })) },
  { weight: 1, arbitrary: ipv4Spelling(0).map((host) => ({ host, expect: 'refuse' as const })) },
  { weight: 3, arbitrary: ipv4Spelling(toU32('127.0.0.1')).map((host) => ({ host, expect: 'allow' as const })) },
  { weight: 2, arbitrary: fc.constantFrom<TargetChoice>({ host: 'l-ok.test', expect: 'allow' }, { host: 'localhost', expect: 'allow' }, { host: 'l-bad.test', expect: 'refuse' }, { host: 'l-mixed.test', expect: 'refuse' }, { host: 'x.localhost', expect: 'allow' }, { host: '::', expect: 'refuse' }) },
  { weight: 1, arbitrary: fc.constantFrom(...SEEDED_LOOPBACK_TARGETS) },
  { weight: 1, arbitrary: fc.domain().map((host) => ({ host, expect: 'unknown' as const })) },
);

describe('fuzzing the front door on loopback', () => {
  let relay: Relay;
  let dns: TestDns;
  let trap: Trap;
  let target: MtlsTarget;

  beforeAll(async () => {
    dns = await startTestDns();
    dns.set('l-ok.test', ['127.0.0.1']);
    dns.set('l-bad.test', ['127.0.0.2']);
    dns.set('l-mixed.test', ['127.0.0.1', '127.0.0.3']);
    const ca = await createCA('fuzz-ca');
    const server = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost', 'l-ok.test'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: ca.certPem, requireClientCert: false });
    trap = await startTrap(REFUSED_LOOPBACK, target.port);
    relay = await startRelay({
      targetCaPem: ca.certPem,
      env: { TARGET_DNS_SERVERS: dns.server, BODY_LIMIT_BYTES: '1024', REQUEST_HEADERS_TIMEOUT_MS: '2000', REQUEST_TIMEOUT_MS: '4000', FORWARD_ATTEMPTS: '1' },
    });
  });

  afterAll(async () => {
    await relay?.close();
    await trap?.close();
    await target?.close();
    await dns?.close();
  });

  it(`${RUNS} random requests: no 500, no crash, refused targets never accepted or dialled, nothing hop-by-hop or LP-* reaches the target`, async () => {
    const statuses: Record<number, number> = {};
    await fc.assert(
      fc.asyncProperty(caseArb(loopbackTargets, target.port), async (c: FuzzCase) => {
        const status = await sendRaw(relay.api.port, requestBytes(c, relay.auth()));
        statuses[status] = (statuses[status] ?? 0) + 1;
        expect(checkStatus(c, status), JSON.stringify({ ...c, body: c.body.length })).toBeUndefined();
      }),
      { numRuns: RUNS, endOnFailure: true, examples: regressionCases(target.port).map((c) => [c] as [FuzzCase]) },
    );
    await vi.waitFor(async () => expect(await pendingForwardJobs(relay.client, relay.prefix)).toBe(0), { timeout: 60_000, interval: 250 });

    expect(statuses[202] ?? 0).toBeGreaterThan(0);
    expect(target.requests.length, 'accepted cases were forwarded').toBeGreaterThan(0);
    for (const r of target.requests) {
      for (const name of Object.keys(r.headers)) {
        expect(name.startsWith('lp-'), name).toBe(false);
        expect(HOP_BY_HOP.has(name) && name !== 'connection', name).toBe(false);
      }
    }
    expect(trap.hits).toEqual([]);
    expect(relay.api.proc.exitCode).toBeNull();
    expect(relay.workers.every((w) => w.proc.exitCode === null)).toBe(true);
    // Lines are written in order, 16 KiB at a time or every 100 ms: once the line of a request made now is out, every
    // line about the cases is.
    const barrier = await request(`${relay.api.url}/mtls/jobs/log-barrier`, { headers: { ...relay.auth(), 'x-request-id': 'fuzz-log-barrier' } });
    await barrier.body.dump();
    await relay.api.waitForLog((l) => l.msg === 'request' && l['reqId'] === 'fuzz-log-barrier');
    expect(relay.api.logs.filter((l) => l.msg === 'unhandled error' || l.level === 'fatal')).toEqual([]);
    const codes = await failedJobCodes(relay.client, relay.prefix);
    expect(codes['internal'] ?? 0, JSON.stringify(codes)).toBe(0);
    console.info(`fuzz (loopback): ${RUNS} cases; statuses ${JSON.stringify(statuses)}; forwarded ${target.requests.length}; failed jobs ${JSON.stringify(codes)}`);
  });
});
