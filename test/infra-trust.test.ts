/**
 * TARGET_CA_FILE widens what the worker trusts for targets (the process's default store), but never what it
 * trusts for its own infrastructure: Redis over TLS and Vault stay on the CAs the process had at start.
 * A "partner" CA issues the certificate of a TLS server on 127.0.0.1; once that CA is trusted for targets,
 * a default-store client gets through while the Redis and Vault clients refuse the same server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createTlsServer, getCACertificates, setDefaultCACertificates } from 'node:tls';
import type { Server as TlsServer } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../packages/shared/src/redis.ts';
import { VaultBackend } from '../packages/shared/src/store/vault-backend.ts';
import { trustForTargets } from '../packages/shared/src/trust.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA } from '../scripts/lib/pki.ts';

const logger = pino({ level: 'silent' });
const originalStore = getCACertificates('default');
let partner: CA;
let tlsServer: TlsServer;
let tlsPort = 0;
let bytesAfterHandshake = 0;
let vault: HttpsServer;
let vaultPort = 0;
let vaultRequests = 0;
const dir = mkdtempSync(join(tmpdir(), 'infra-trust-'));

const listen = (server: TlsServer | HttpsServer): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

beforeAll(async () => {
  partner = await createCA('partner-ca');
  const leaf = await issueCertificate(partner, { commonName: '127.0.0.1', usage: 'server', ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
  tlsServer = createTlsServer({ cert: leaf.chainPem, key: leaf.keyPem }, (socket) => {
    socket.on('data', (chunk: Buffer) => (bytesAfterHandshake += chunk.length));
    socket.on('error', () => undefined);
  });
  tlsServer.on('tlsClientError', () => undefined);
  tlsPort = await listen(tlsServer);
  vault = createHttpsServer({ cert: leaf.chainPem, key: leaf.keyPem }, (req, res) => {
    vaultRequests++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ initialized: true, sealed: false, standby: false }));
  });
  vault.on('tlsClientError', () => undefined);
  vaultPort = await listen(vault);
  trustForTargets([partner.certPem]);
});

afterAll(async () => {
  setDefaultCACertificates(originalStore);
  await new Promise((resolve) => tlsServer.close(resolve));
  await new Promise((resolve) => vault.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('trust for targets does not extend to Redis or Vault', () => {
  it('a client on the default store (as target connections are) accepts the partner-issued server', async () => {
    const before = bytesAfterHandshake;
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: tlsPort }, () => {
        socket.end('PING\r\n', () => resolve());
      });
      socket.on('error', reject);
    });
    await expect.poll(() => bytesAfterHandshake - before).toBeGreaterThan(0);
  });

  it('a rediss: connection refuses the same server: certificate not verified, no command sent', async () => {
    const before = bytesAfterHandshake;
    const redis = createRedis(`rediss://127.0.0.1:${tlsPort}`, 'producer', logger, 'trust-test');
    try {
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => redis.once('error', resolve));
      expect(err.code).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/);
      expect(bytesAfterHandshake - before).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  it('Vault without VAULT_CA_FILE refuses the same server; with VAULT_CA_FILE naming the partner CA it is reached', async () => {
    const options = { addr: `https://127.0.0.1:${vaultPort}`, token: 'not-used', mount: 'secret', pathPrefix: 'mtls-relay', timeoutMs: 3000 };
    const pinned = new VaultBackend(options);
    expect(await pinned.health()).toMatchObject({ ok: false });
    expect(vaultRequests).toBe(0);

    const caFile = join(dir, 'partner.pem');
    writeFileSync(caFile, partner.certPem);
    const named = new VaultBackend({ ...options, caFile });
    expect(await named.health()).toEqual({ ok: true, detail: 'vault: active' });
    expect(vaultRequests).toBe(1);
    await pinned.close();
    await named.close();
  });
});
