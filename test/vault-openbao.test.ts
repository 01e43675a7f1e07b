/**
 * The whole relay (api, worker, Redis) against a real OpenBao server on file storage, initialised and unsealed
 * by test/support/bao.ts and set up by deploy/vault/init.sh (AppRole, least-privilege policy, KV v2 at relay-kv/):
 *
 * - a policy that denies an operation answers a clear code (store_denied, 502), never a 500, and a forward is
 *   not retried as if Vault were down;
 * - sealed: certificates the worker has cached keep serving forwards, new lookups answer 503 store_unavailable
 *   with Retry-After (forwards, management, the mapping check), and everything recovers after unseal;
 * - a restart of the server on its file storage loses nothing.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { describeWithBao, runInitScript, startBao } from './support/bao.ts';
import type { Bao, InitResult } from './support/bao.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import { call, forward } from './suites/admin-client.ts';
import type { ApiResponse } from './suites/admin-client.ts';

describeWithBao('the relay against OpenBao on file storage', () => {
  let bao: Bao;
  let init: InitResult;
  let relay: Relay;
  let target: MtlsTarget;
  let clientCa: CA;

  const newAccount = (): string => `acc${randomBytes(4).toString('hex')}`;
  const certs = (account: string): string => `/accounts/${account}/access/certificates`;

  /** An account with one certificate for `localhost` (so any forward to the target uses it); its id. */
  const accountWithCertificate = async (account: string): Promise<string> => {
    const leaf = await issueCertificate(clientCa, { commonName: `client-${account}`, usage: 'client' });
    const created = await call(relay, 'POST', certs(account), {
      name: 'c', certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: ['localhost'],
    });
    expect(created.status, created.text).toBe(201);
    return created.json.result.id as string;
  };
  const send = (account: string): Promise<ApiResponse> => forward(relay, account, `https://localhost:${target.port}/hello`);
  const jobAttempts = async (res: ApiResponse): Promise<number> => {
    const job = await call(relay, 'GET', `/mtls/jobs/${String(res.headers['lp-job-id'])}`);
    expect(job.status, job.text).toBe(200);
    return job.json.attempts as number;
  };

  beforeAll(async () => {
    bao = await startBao({ storage: 'file' });
    init = await runInitScript(bao, { mount: 'relay-kv', pathPrefix: 'relay' });
    const serverCa = await createCA('openbao-server-ca');
    clientCa = await createCA('openbao-client-ca');
    const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server: serverCert, clientCa: clientCa.certPem, requireClientCert: false });
    relay = await startRelay({
      kind: 'vault',
      workers: 1,
      targetCaPem: serverCa.certPem,
      vault: { addr: bao.addr, adminToken: bao.rootToken, roleId: init.roleId, secretId: init.secretId, mount: init.mount, pathPrefix: init.pathPrefix },
      env: { FORWARD_ATTEMPTS: '3', VAULT_TIMEOUT_MS: '3000' },
    });
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
    await bao?.close();
  });

  it('a policy that denies an operation answers store_denied (502), not a 500, and the forward is tried once', async () => {
    const cached = newAccount();
    const fresh = newAccount();
    const cachedId = await accountWithCertificate(cached);
    await accountWithCertificate(fresh);
    expect((await send(cached)).headers['lp-mtls']).toBe('used');

    // The live policy loses "list" and "delete" on the metadata paths: the relay's token is the same one.
    const original = await bao.run(['policy', 'read', 'mtls-relay']);
    const reduced = original.replace(/capabilities = \["list", "delete"\]/, 'capabilities = []');
    expect(reduced).not.toBe(original);
    await bao.cli(['policy', 'write', 'mtls-relay', '-'], {}, reduced).then((r) => expect(r.code, r.stderr).toBe(0));
    try {
      const res = await send(fresh);
      expect(res.status, res.text).toBe(502);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.json).toMatchObject({ code: 'store_denied', status: 502 });
      expect(res.headers['retry-after']).toBeUndefined();
      expect(await jobAttempts(res)).toBe(1); // FORWARD_ATTEMPTS is 3: a denial is not an outage

      const removal = await call(relay, 'DELETE', `${certs(cached)}/${cachedId}`);
      expect(removal.status, removal.text).toBe(502);
      expect(removal.json).toMatchObject({ success: false, errors: [{ code: 12015 }] });
      const listing = await call(relay, 'GET', `/mtls/account/${fresh}/mappings`);
      expect(listing.status, listing.text).toBe(502);
      expect(listing.json).toMatchObject({ code: 'store_denied' });
      const check = await call(relay, 'POST', '/mtls/mapping?v=2', [{ accountId: newAccount(), serviceName: 's', url: 'https://localhost/x' }]);
      expect(check.status, check.text).toBe(502);
      expect(check.json).toMatchObject({ code: 'store_denied' });

      // What is cached keeps working; what the policy still allows (reading one document) too.
      expect((await send(cached)).headers['lp-mtls']).toBe('used');
      expect((await call(relay, 'GET', `${certs(cached)}/${cachedId}`)).status).toBe(200);
    } finally {
      await bao.cli(['policy', 'write', 'mtls-relay', '-'], {}, original);
    }
    const again = await send(fresh);
    expect(again.status, again.text).toBe(200);
    expect(again.headers['lp-mtls']).toBe('used');
  });

  it('sealed: cached certificates keep serving, new lookups answer 503 store_unavailable with Retry-After, and all recovers after unseal', async () => {
    const cached = newAccount();
    const fresh = newAccount();
    const cachedId = await accountWithCertificate(cached);
    const freshId = await accountWithCertificate(fresh);
    expect((await send(cached)).headers['lp-mtls-certificate-id']).toBe(cachedId);

    await bao.seal();
    try {
      const served = await send(cached);
      expect(served.status, served.text).toBe(200);
      expect(served.headers['lp-mtls-certificate-id']).toBe(cachedId);

      const lookup = await send(fresh);
      expect(lookup.status, lookup.text).toBe(503);
      expect(lookup.json).toMatchObject({ code: 'store_unavailable' });
      expect(Number(lookup.headers['retry-after'])).toBeGreaterThanOrEqual(1);

      const list = await call(relay, 'GET', certs(fresh));
      expect(list.status, list.text).toBe(503);
      expect(list.json).toMatchObject({ success: false, errors: [{ code: 12009 }] });
      expect(Number(list.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      const mappings = await call(relay, 'GET', `/mtls/account/${fresh}/mappings`);
      expect(mappings.status, mappings.text).toBe(503);
      expect(mappings.json).toMatchObject({ code: 'store_unavailable' });

      const check = await call(relay, 'POST', '/mtls/mapping?v=2', [{ accountId: newAccount(), serviceName: 's', url: 'https://localhost/x' }]);
      expect(check.status, check.text).toBe(503);
      expect(check.json).toMatchObject({ code: 'store_unavailable' });

      const ready = await call(relay, 'GET', '/readyz');
      expect(ready.status).toBe(503);
    } finally {
      await bao.unseal();
    }

    await vi.waitFor(async () => {
      const res = await send(fresh);
      expect(res.status, res.text).toBe(200);
      expect(res.headers['lp-mtls-certificate-id']).toBe(freshId);
    }, { timeout: 20_000, interval: 250 });
    await vi.waitFor(async () => expect((await call(relay, 'GET', '/readyz')).status).toBe(200), { timeout: 20_000, interval: 250 });
    expect((await call(relay, 'GET', certs(fresh))).json.result.map((c: { id: string }) => c.id)).toEqual([freshId]);
  });

  it('a restart of the server on its file storage loses nothing', async () => {
    const account = newAccount();
    const id = await accountWithCertificate(account);
    const mapping = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName: 'svc', url: `https://localhost:${target.port}/m`, certificateId: id });
    expect(mapping.status, mapping.text).toBe(201);

    await bao.restart();

    // Nothing of this account was looked up by the worker yet: this forward reads Vault after the restart.
    await vi.waitFor(async () => {
      const res = await forward(relay, account, `https://localhost:${target.port}/m`, 'svc');
      expect(res.status, res.text).toBe(200);
      expect(res.headers['lp-mtls-certificate-id']).toBe(id);
    }, { timeout: 20_000, interval: 250 });
    const got = await call(relay, 'GET', `${certs(account)}/${id}`);
    expect(got.status).toBe(200);
    expect(got.json.result).toMatchObject({ id, name: 'c', associated_hostnames: ['localhost'] });
    expect((await call(relay, 'GET', `/mtls/account/${account}/mappings`)).json).toEqual([mapping.json]);
  });
});
