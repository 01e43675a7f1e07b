/**
 * docker compose's demo service (scripts/demo-compose.ts) against a real relay: it loads its client certificate
 * and mapping through the API, and a forward through the relay then reaches the demo target with that certificate.
 * Run twice, it replaces what the first run loaded.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { freePort } from '../scripts/lib/ports.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

let relay: Relay;
let dir: string;
const children: Array<ReturnType<typeof spawn>> = [];

/** Starts the demo script and resolves with its "demo ready" line (the process keeps serving the target). */
function startDemo(port: number): Promise<string> {
  const proc = spawn(process.execPath, ['scripts/demo-compose.ts'], {
    cwd: new URL('..', import.meta.url).pathname,
    env: {
      PATH: process.env['PATH'] ?? '',
      RELAY_URL: relay.api.url,
      DEMO_DIR: dir,
      DEMO_TARGET_PORT: String(port),
      DEMO_TARGET_HOST: 'localhost',
      DEMO_LISTEN_HOST: '127.0.0.1',
      AUTH_JWT_SECRET: relay.env['AUTH_JWT_SECRET'] ?? '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  let out = '';
  return new Promise((resolve, reject) => {
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.startsWith('demo ready'));
      if (line !== undefined) resolve(line);
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    proc.once('exit', (code) => reject(new Error(`demo-compose exited with ${code}:\n${out}`)));
  });
}

const stop = (proc: ReturnType<typeof spawn>): Promise<void> =>
  new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
  });

describe('the compose demo service', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mtls-relay-demo-'));
    relay = await startRelay({ workers: 0 });
  });

  afterAll(async () => {
    await Promise.all(children.map(stop));
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads its certificate and mapping through the API; a forward then presents the demo certificate; a rerun replaces them', async () => {
    for (const round of [1, 2]) {
      const port = await freePort();
      const ready = await startDemo(port);
      expect(ready).toContain(`https://localhost:${port}/hello`);
      // The workers trust the CA the demo wrote (compose: TARGET_CA_FILE on the shared volume).
      const worker = await relay.startWorker({ TARGET_CA_FILE: join(dir, 'target-ca.pem') });
      expect(readFileSync(join(dir, 'target-ca.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');

      const res = await request(`${relay.api.url}/mtls/account/demo`, {
        headers: { ...relay.auth(), 'lp-forward-url': `https://localhost:${port}/hello`, 'lp-service-name': 'demo-service', 'lp-stop-if-certificate-not-found': 'true' },
      });
      const body = await res.body.text();
      expect(res.statusCode, body).toBe(200);
      expect(res.headers['lp-mtls']).toBe('used');
      expect(JSON.parse(body).clientCertificate.subject).toContain('CN=demo-client');

      const list = await request(`${relay.api.url}/accounts/demo/access/certificates`, { headers: relay.auth() });
      const certificates = ((await list.body.json()) as { result: Array<{ name: string }> }).result;
      expect(certificates.filter((c) => c.name === 'demo-client'), `round ${round}`).toHaveLength(1);
      await stop(children.at(-1) as ReturnType<typeof spawn>);
      await worker.stop();
    }
  });
});
