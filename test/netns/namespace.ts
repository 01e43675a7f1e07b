/**
 * The tests in test/netns name private and public addresses (10.0.0.1, 169.254.169.254, 93.184.216.34…).
 * They run only inside a network namespace whose one interface is loopback (`npm run test:netns`:
 * `unshare -n`), so that a bug in the SSRF guard meets a local listener or ENETUNREACH, never a network.
 * In that namespace whole special-purpose ranges are made local (AnyIP routes on lo), so a listener on
 * `::` sees any connection to any of their addresses.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Ranges routed to lo: every non-global block a fuzz case can dial, plus one public block as a control. */
export const LOCAL_RANGES_V4 = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24',
  '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '240.0.0.0/4',
  '93.184.216.0/24',
];
export const LOCAL_RANGES_V6 = ['fc00::/7', 'fec0::/10', '2001::/23', '2001:db8::/32', '2002::/16', '64:ff9b::/96', '64:ff9b:1::/48', '100::/64', '3fff::/20'];
/** A public address that is local in the namespace: a dial there is allowed and reaches the trap. */
export const PUBLIC_CONTROL = '93.184.216.34';

/** Throws unless this process sits in a network namespace whose only interface is lo and that has no route out. */
export function assertIsolatedNetwork(): void {
  const devices = readFileSync('/proc/self/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]?.trim())
    .filter((d): d is string => d !== undefined && d !== '');
  const v4Routes = readFileSync('/proc/self/net/route', 'utf8').split('\n').slice(1).filter((l) => l.trim() !== '');
  const v6Devices = readFileSync('/proc/self/net/ipv6_route', 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/).pop());
  const problems: string[] = [];
  if (devices.join(',') !== 'lo') problems.push(`interfaces: ${devices.join(', ')}`);
  if (v4Routes.some((l) => !l.startsWith('lo'))) problems.push('an IPv4 route through another interface');
  if (v6Devices.some((d) => d !== 'lo')) problems.push('an IPv6 route through another interface');
  if (problems.length > 0) {
    throw new Error(
      `test/netns must run inside a network namespace with only loopback (npm run test:netns, or: unshare -n sh -c 'ip link set lo up && vitest run --project netns'); found ${problems.join('; ')}`,
    );
  }
}

/** Brings lo up and routes the special ranges to it (idempotent). Only after assertIsolatedNetwork. */
export function prepareLoopbackRanges(): void {
  assertIsolatedNetwork();
  const ip = (args: string[]): void => {
    try {
      execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? '');
      if (!stderr.includes('File exists')) throw err;
    }
  };
  ip(['link', 'set', 'lo', 'up']);
  for (const r of LOCAL_RANGES_V4) ip(['route', 'add', 'local', r, 'dev', 'lo']);
  for (const r of LOCAL_RANGES_V6) ip(['-6', 'route', 'add', 'local', r, 'dev', 'lo']);
}
