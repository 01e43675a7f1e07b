/**
 * Store failures as callers see them (issue 14 row 13): only an unavailable store is an outage that the worker
 * retries (503 store_unavailable). A document the relay cannot open is a clear 500 at the first attempt, and a
 * store that refuses the relay (Vault 403) is 502 store_denied at the first attempt, with a log line for the
 * operator. The same mapping serves the admin routes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { startVaultServer } from './support/vault-server.ts';
import type { VaultServer } from './support/vault-server.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

let target: MtlsTarget;
let serverCa: CA;
let clientCa: CA;

async function forward(relay: Relay, account: string, path: string): Promise<Answer> {
  const res = await request(`${relay.api.url}/mtls/account/${account}`, {
    headers: { ...relay.auth(), 'lp-forward-url': `${target.url}${path}`, 'lp-service-name': 'svc' },
  });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Record<string, unknown> };
}

/** The job's attempts, as the status route reports them. */
async function attemptsOf(relay: Relay, jobId: string): Promise<number> {
  const res = await request(`${relay.api.url}/mtls/jobs/${jobId}`, { headers: relay.auth() });
  return ((await res.body.json()) as { attempts: number }).attempts;
}

beforeAll(async () => {
  serverCa = await createCA('store-errors-server-ca');
  clientCa = await createCA('store-errors-client-ca');
  const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false });
});

afterAll(async () => {
  await target?.close();
});

describe('embedded store: a document the relay cannot open', () => {
  let relay: Relay;
  const account = `undecryptable${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    relay = await startRelay({ targetCaPem: serverCa.certPem, env: { FORWARD_ATTEMPTS: '3', RETRY_BASE_DELAY_MS: '200' } });
  });
  afterAll(async () => {
    await relay?.close();
  });

  it('a forward answers 500 internal at the first attempt (not 503 store_unavailable after retries), saying why; the admin route says the same', async () => {
    const leaf = await issueCertificate(clientCa, { commonName: 'undecryptable', usage: 'client' });
    const cert = await relay.store.createCertificate(account, { name: 'one', certificate: leaf.chainPem, privateKey: leaf.keyPem });
    const other = await relay.store.createCertificate(account, { name: 'two', certificate: leaf.chainPem, privateKey: leaf.keyPem });
    // Swap in another document's sealed bytes: sealed for another path, they no longer open here.
    const docKey = (id: string): string => `${relay.prefix}:store:doc:accounts/${account}/certificates/${id}`;
    expect(await relay.client.exists(docKey(cert.id))).toBe(1);
    await relay.client.hset(docKey(cert.id), 'd', (await relay.client.hget(docKey(other.id), 'd')) as string);

    target.reset();
    const res = await forward(relay, account, '/undecryptable');
    expect(res.status).toBe(500);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.body).toMatchObject({ code: 'internal' });
    expect(res.body['detail']).toMatch(/cannot be opened with the configured MASTER_KEY.*not retried/);
    expect(await attemptsOf(relay, res.headers['lp-job-id'] as string)).toBe(1);
    expect(target.requests).toHaveLength(0);

    const admin = await request(`${relay.api.url}/accounts/${account}/access/certificates/${cert.id}`, { headers: relay.auth() });
    expect(admin.statusCode).toBe(500);
    const envelope = (await admin.body.json()) as { success: boolean; errors: Array<{ code: number; message: string }> };
    expect(envelope.success).toBe(false);
    expect(envelope.errors[0]?.message).toMatch(/cannot be opened with the configured MASTER_KEY/);
    await relay.api.waitForLog((l) => l.msg === 'certificate store fault' && l['code'] === 'internal');
  });
});

describe('Vault store: the relay is denied', () => {
  let relay: Relay;
  // The Vault-API server written for the tests: it revokes every token and seals on demand, in one call each.
  let vault: VaultServer;
  const account = `denied${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    vault = await startVaultServer();
    relay = await startRelay({
      kind: 'vault',
      vault: { addr: vault.addr, adminToken: vault.rootToken, token: vault.rootToken },
      workers: 0,
      targetCaPem: serverCa.certPem,
      env: { FORWARD_ATTEMPTS: '3', RETRY_BASE_DELAY_MS: '200' },
    });
    // A worker with a token of its own (not the root token), which the test then revokes: Vault answers 403.
    await relay.startWorker({ VAULT_TOKEN: vault.createToken() });
  });
  afterAll(async () => {
    await relay?.close();
    await vault?.close();
  });

  it('a forward answers 502 store_denied at the first attempt, not 503 store_unavailable after retries', async () => {
    vault.revokeAllTokens();
    target.reset();
    const res = await forward(relay, account, '/denied');
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.body).toMatchObject({ code: 'store_denied', status: 502 });
    expect(res.body['detail']).toMatch(/permission denied/);
    expect(await attemptsOf(relay, res.headers['lp-job-id'] as string)).toBe(1);
    expect(target.requests).toHaveLength(0);
  });

  it('the mapping check answers 502 store_denied too, not a generic failure', async () => {
    vault.revokeAllTokens();
    const res = await request(`${relay.api.url}/mtls/mapping?v=2`, {
      method: 'POST',
      headers: { ...relay.auth(), 'content-type': 'application/json' },
      body: JSON.stringify([{ accountId: `${account}m`, serviceName: 'svc', url: `${target.url}/x` }]),
    });
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ code: 'store_denied' });
  });

  it('while Vault is sealed (an outage), the forward is retried and answers 503 store_unavailable with Retry-After', async () => {
    vault.seal();
    try {
      const res = await forward(relay, `${account}x`, '/sealed');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ code: 'store_unavailable' });
      expect(res.headers['retry-after']).toBeDefined();
      expect(await attemptsOf(relay, res.headers['lp-job-id'] as string)).toBe(3);
    } finally {
      vault.unseal();
    }
  });
});
