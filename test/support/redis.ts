import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/lib/ports.ts';
import { reapOnExit } from './reaper.ts';
import { assertNothingInClear, AtRestViolation } from './at-rest.ts';

export interface TestRedis {
  url: string;
  port: number;
  /** pid of the private redis-server (undefined for an external REDIS_URL or while stopped). */
  pid(): number | undefined;
  /** Stops the server (SIGTERM); with appendonly the data survives a `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data folder. */
  start(): Promise<void>;
  client(): Redis;
  close(): Promise<void>;
}

async function waitForPing(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch {
      r.disconnect();
      if (Date.now() > deadline) throw new Error(`redis at ${url} did not start`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

/**
 * A private redis-server for one test file (never the machine's shared 6379). With REDIS_URL set, that
 * server is used instead and isolation comes from each test's own key prefix; stop/start are then refused.
 */
export async function startTestRedis(options: { appendonly?: boolean } = {}): Promise<TestRedis> {
  const clients: Redis[] = [];
  const external = process.env['REDIS_URL'];
  if (external !== undefined && external !== '') {
    return {
      url: external,
      port: Number(new URL(external).port || 6379),
      pid: () => undefined,
      stop: () => Promise.reject(new Error('cannot stop an external REDIS_URL')),
      start: () => Promise.reject(new Error('cannot start an external REDIS_URL')),
      client: () => {
        const c = new Redis(external);
        clients.push(c);
        return c;
      },
      close: async () => {
        clients.forEach((c) => c.disconnect());
      },
    };
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    proc = reapOnExit(spawn(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir,
        '--appendonly', options.appendonly === true ? 'yes' : 'no', '--appendfsync', 'always',
        '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning',
      ],
      { stdio: 'ignore' },
    ));
    await waitForPing(url, 10_000);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (p === undefined || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  };
  await start();
  return {
    url,
    port,
    pid: () => proc?.pid,
    stop,
    start,
    client: () => {
      const c = new Redis(url);
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    close: async () => {
      // Every e2e file's Redis is scanned before it goes: no secret may be at rest in clear (test/support/at-rest.ts).
      let violation: unknown;
      if (proc !== undefined && proc.exitCode === null) {
        const scanner = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
        scanner.on('error', () => undefined);
        violation = await assertNothingInClear(scanner, url).then(
          () => undefined,
          (err: unknown) => (err instanceof AtRestViolation ? err : undefined),
        );
        scanner.disconnect();
      }
      clients.forEach((c) => c.disconnect());
      await stop();
      rmSync(dir, { recursive: true, force: true });
      if (violation !== undefined) throw violation;
    },
  };
}
