/**
 * `npm start` as a user runs it: the api, a worker and the demo target come up, the printed curl command
 * forwards through the relay with the demo client certificate, and Ctrl-C (SIGINT) stops everything.
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis } from './support/redis.ts';
import { freePort } from '../scripts/lib/ports.ts';
import type { TestRedis } from './support/redis.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis?.close();
});

describe('npm start', () => {
  it('starts the system with a demo target; the printed curl example (with the printed admin token) returns the target answer with LP-mtls: used, and is refused without the token; SIGINT stops it', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, ['scripts/start.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        REDIS_URL: redis.url,
        PORT: String(port),
        METRICS_PORT: '0',
        DEMO_TARGET_PORT: String(await freePort()),
        QUEUE_PREFIX: `start${port}`,
        START_QUIET: 'true',
        HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const curlLine = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no curl example printed:\n${output}`)), 45_000);
      proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        const line = output.split('\n').find((l) => l.startsWith('curl '));
        if (line !== undefined) {
          clearTimeout(timer);
          resolve(line);
        }
      });
      proc.once('exit', (code) => reject(new Error(`npm start exited early (${code}):\n${output}`)));
    });
    try {
      const answer = execFileSync('bash', ['-c', curlLine], { encoding: 'utf8', timeout: 20_000 });
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
      expect(answer).toMatch(/^LP-mtls: used\r?$/m);
      expect(answer).toContain('hello from the demo mTLS target');
      expect(answer).toContain('CN=demo-client');
      // The printed command carries the printed admin token; without it the relay refuses.
      expect(curlLine).toMatch(/-H 'Authorization: Bearer [\w-]+\.[\w-]+\.[\w-]+'/);
      const anonymous = execFileSync('bash', ['-c', curlLine.replace(/ -H 'Authorization: [^']*'/, '')], { encoding: 'utf8', timeout: 20_000 });
      expect(anonymous).toMatch(/^HTTP\/1\.1 401 /);
      expect(anonymous).toMatch(/^WWW-Authenticate: Bearer/im);
    } finally {
      const code = await new Promise<number | null>((resolve) => {
        proc.once('exit', (c) => resolve(c));
        proc.kill('SIGINT');
      });
      expect(code).toBe(0);
    }
  });

  it('with LOG_LEVEL=warn (no info lines to watch) it still comes up, because it waits on /readyz; ports set to 0 are picked for it', async () => {
    const proc = spawn(process.execPath, ['scripts/start.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        REDIS_URL: redis.url,
        PORT: '0',
        METRICS_PORT: '0',
        DEMO: 'false',
        LOG_LEVEL: 'warn',
        QUEUE_PREFIX: `startwarn${Date.now()}`,
        START_QUIET: 'true',
        HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    try {
      const apiUrl = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`npm start did not say it is up:\n${output}`)), 60_000);
        proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          output += chunk;
          const m = /mtls-relay is up: api on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
          if (m !== null) {
            clearTimeout(timer);
            resolve(m[1] as string);
          }
        });
        proc.once('exit', (code) => reject(new Error(`npm start exited early (${code}):\n${output}`)));
      });
      expect(apiUrl).not.toBe('http://127.0.0.1:0');
      const ready = await fetch(`${apiUrl}/readyz`);
      expect(ready.status).toBe(200);
      await ready.body?.cancel();
    } finally {
      const code = await new Promise<number | null>((resolve) => {
        if (proc.exitCode !== null) {
          resolve(proc.exitCode);
          return;
        }
        proc.once('exit', (c) => resolve(c));
        proc.kill('SIGINT');
      });
      expect(code).toBe(0);
    }
  });
});
