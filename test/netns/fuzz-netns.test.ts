/**
 * The big fuzz run: at least 10,000 requests with LP-forward-url spellings of every
 * kind of address (private, metadata, reserved, multicast, embedded in IPv6, public), names through the
 * test DNS server, and random LP-* header values, bodies, methods, account ids and framing. Inside an
 * isolated namespace where those ranges are local, one listener on `::` sees every dial. Asserted: no 500,
 * no crash, no refused address ever answered 202, and no socket to any address but the allowed ones.
 */
import fc from 'fast-check';
import type { Arbitrary } from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRelay } from '../support/relay.ts';
import type { Relay } from '../support/relay.ts';
import { startTestDns } from '../support/resolver.ts';
import type { TestDns } from '../support/resolver.ts';
import { startTrap } from '../support/trap.ts';
import type { Trap } from '../support/trap.ts';
import {
  caseArb,
  dialledForm,
  embeddedV6Spelling,
  checkStatus,
  failedJobCodes,
  inRange,
  ipv4Spelling,
  pendingForwardJobs,
  regressionCases,
  requestBytes,
  SEEDED_LOOPBACK_TARGETS,
  sendRaw,
} from '../support/fuzz.ts';
import type { FuzzCase, TargetChoice } from '../support/fuzz.ts';
import { formatIp, parseIp } from '../../packages/shared/src/net-policy.ts';
import { assertIsolatedNetwork } from './namespace.ts';

/** One spelling per address, so that a socket's report and a generated spelling compare equal. */
const canonical = (address: string): string => {
  const ip = parseIp(address);
  return ip === null ? address : formatIp(ip);
};

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 10_000);

// Non-global IPv4 blocks (127.0.0.1 is allowlisted for the test targets, so 127/8 is handled apart).
const REFUSED_V4 = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24',
  '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
];
const PUBLIC_V4 = '93.184.216.0/24'; // local in the namespace (see namespace.ts)

const v4Choice = (cidrs: string[], expect: TargetChoice['expect']): Arbitrary<TargetChoice> =>
  fc.constantFrom(...cidrs).chain((c) => inRange(c)).chain((value) =>
    fc.oneof(ipv4Spelling(value), embeddedV6Spelling(value)).map((host) => ({ host, expect })),
  );

const v6Refused: Arbitrary<TargetChoice> = fc
  .tuple(fc.constantFrom('fc00', 'fd00', 'fdff', 'fe80', 'febf', 'fec0', 'ff02', 'ff0e', '2001:db8', '100:0:0', '64:ff9b:1'), fc.integer({ min: 1, max: 0xffff }))
  .map(([p, n]) => ({ host: `${p}::${n.toString(16)}`, expect: 'refuse' as const }));

const names: Array<[string, string[], TargetChoice['expect']]> = [
  ['n-private.test', ['10.20.30.40'], 'refuse'],
  ['n-meta.test', ['169.254.169.254'], 'refuse'],
  ['n-ula.test', ['fd00:ec2::254'], 'refuse'],
  ['n-mapped.test', ['::ffff:192.168.0.1'], 'refuse'],
  ['n-mixed.test', ['93.184.216.34', '10.0.0.1'], 'refuse'],
  ['n-public.test', ['93.184.216.34'], 'allow'],
  ['metadata.google.internal', ['169.254.169.254'], 'refuse'],
];

const targets: Arbitrary<TargetChoice> = fc.oneof(
  { weight: 10, arbitrary: v4Choice(REFUSED_V4, 'refuse') },
  { weight: 2, arbitrary: v6Refused },
  // 127.0.0.1 itself is allowlisted for the test relay, in every spelling (the URL parser writes mapped forms in hex).
  { weight: 2, arbitrary: v4Choice(['127.0.0.0/8'], 'refuse').filter((t) => canonical(dialledForm(t.host) ?? '') !== canonical('::ffff:127.0.0.1')) },
  { weight: 2, arbitrary: v4Choice([PUBLIC_V4], 'allow') },
  { weight: 2, arbitrary: fc.constantFrom(...names.map(([host, , expect]) => ({ host, expect }))) },
  { weight: 1, arbitrary: fc.constantFrom(...SEEDED_LOOPBACK_TARGETS) },
  { weight: 1, arbitrary: fc.domain().map((host) => ({ host, expect: 'unknown' as const })) },
);

describe('fuzzing the front door (isolated network namespace)', () => {
  let relay: Relay;
  let dns: TestDns;
  let trap: Trap;
  // Where a dial may land: the allowlisted loopback, and the public addresses the cases allowed.
  const allowedDials = new Set<string>(['::ffff:127.0.0.1', '::1', '::ffff:93.184.216.34'].map(canonical));

  beforeAll(async () => {
    assertIsolatedNetwork();
    dns = await startTestDns();
    for (const [name, answers] of names) dns.set(name, answers);
    trap = await startTrap(['::']);
    relay = await startRelay({
      env: { TARGET_DNS_SERVERS: dns.server, BODY_LIMIT_BYTES: '1024', REQUEST_HEADERS_TIMEOUT_MS: '2000', REQUEST_TIMEOUT_MS: '4000', FORWARD_ATTEMPTS: '1' },
    });
  });

  afterAll(async () => {
    await relay?.close();
    await trap?.close();
    await dns?.close();
  });

  it(`${RUNS} random requests: no 500, no crash, no refused target accepted, no socket to a refused address`, async () => {
    const statuses: Record<number, number> = {};
    let refusedChecked = 0;
    const property = fc.asyncProperty(caseArb(targets, trap.port), async (c: FuzzCase) => {
      if (c.target.expect === 'allow') {
        const d = dialledForm(c.target.host);
        if (d !== undefined) allowedDials.add(canonical(d));
      }
      const status = await sendRaw(relay.api.port, requestBytes(c, relay.auth()));
      statuses[status] = (statuses[status] ?? 0) + 1;
      expect(checkStatus(c, status), JSON.stringify({ ...c, body: c.body.length })).toBeUndefined();
      if (c.urlValid && c.target.expect === 'refuse') refusedChecked += 1;
    });
    await fc.assert(property, { numRuns: RUNS, endOnFailure: true, examples: regressionCases(trap.port).map((c) => [c] as [FuzzCase]) });

    expect(refusedChecked).toBeGreaterThan(RUNS / 4);
    expect(statuses[202] ?? 0, 'some cases got through to the queue').toBeGreaterThan(0);
    await vi.waitFor(async () => expect(await pendingForwardJobs(relay.client, relay.prefix)).toBe(0), { timeout: 120_000, interval: 250 });

    expect(relay.api.proc.exitCode).toBeNull();
    expect(relay.workers.every((w) => w.proc.exitCode === null)).toBe(true);
    expect(relay.api.logs.filter((l) => l.msg === 'unhandled error' || l.level === 'fatal')).toEqual([]);
    const codes = await failedJobCodes(relay.client, relay.prefix);
    expect(codes['internal'] ?? 0, JSON.stringify(codes)).toBe(0);
    expect(codes['invalid_job'] ?? 0).toBe(0);
    const forbidden = trap.hits.map((h) => canonical(h.slice(0, h.lastIndexOf(':')))).filter((a) => !allowedDials.has(a));
    expect(forbidden).toEqual([]);
    console.info(`fuzz: ${RUNS} cases, ${refusedChecked} with a refused target; statuses ${JSON.stringify(statuses)}; failed jobs ${JSON.stringify(codes)}; dials ${trap.hits.length}`);
  });
});
