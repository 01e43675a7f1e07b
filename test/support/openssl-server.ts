/**
 * `openssl s_server` as a target that demands a client certificate from a given CA and, like most TLS servers
 * (OpenSSL, Go, Envoy), refuses an untrusted one with a TLS alert. Node's own TLS server closes the connection
 * without an alert instead, which cannot be told apart from any other reset.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../scripts/lib/ports.ts';
import type { Pem } from '../../scripts/lib/pki.ts';

export interface OpensslServer {
  url: string;
  close(): Promise<void>;
}

export async function startOpensslServer(server: Pem, clientCaPem: string): Promise<OpensslServer> {
  const dir = mkdtempSync(join(tmpdir(), 'openssl-target-'));
  writeFileSync(join(dir, 'cert.pem'), server.certPem);
  writeFileSync(join(dir, 'key.pem'), server.keyPem);
  writeFileSync(join(dir, 'ca.pem'), clientCaPem);
  const port = await freePort();
  const proc = spawn(
    'openssl',
    ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', 'cert.pem', '-key', 'key.pem', '-CAfile', 'ca.pem', '-Verify', '1', '-verify_return_error', '-www', '-quiet'],
    { cwd: dir, stdio: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('openssl s_server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `https://127.0.0.1:${port}`,
    close: async () => {
      if (proc.exitCode === null) {
        await new Promise<void>((resolve) => {
          proc.once('exit', () => resolve());
          proc.kill('SIGTERM');
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
