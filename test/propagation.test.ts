/**
 * Change propagation with two worker processes: every change made through the API is announced on Redis
 * pub/sub and both workers drop what they cached at once. The workers' cache TTL is an hour here, so a test
 * that passes cannot be waiting for it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';
import type { ServiceProcess } from './support/services.ts';
import { call, forward } from './suites/admin-client.ts';

describe('change propagation to two workers', () => {
  let relay: Relay;
  let target: MtlsTarget;
  let first: Issued;
  let second: Issued;
  let third: Issued;

  const newAccount = (): string => `prop${randomBytes(4).toString('hex')}`;
  // Jobs of `account` a worker finished, whether it forwarded them or refused them.
  const handled = (w: ServiceProcess, account: string): number =>
    w.logs.filter((l) => (l.msg === 'forwarded' || l.msg === 'forward attempt failed') && l['accountId'] === account).length;

  /**
   * Sends batches of concurrent forwards until each worker has handled at least one of them (counted from
   * now); returns what the target saw as the client certificate of every request, and the relay's statuses.
   */
  async function untilBothWorkersServed(account: string, url: string, service?: string): Promise<{ fingerprints: Array<string | null>; statuses: number[] }> {
    const start = relay.workers.map((w) => handled(w, account));
    const fingerprints: Array<string | null> = [];
    const statuses: number[] = [];
    for (let round = 0; round < 15; round++) {
      target.reset();
      const results = await Promise.all(Array.from({ length: 8 }, () => forward(relay, account, url, service)));
      statuses.push(...results.map((r) => r.status));
      fingerprints.push(...target.requests.map((r) => r.clientCert?.fingerprint256 ?? null));
      if (relay.workers.every((w, i) => handled(w, account) > start[i]!)) return { fingerprints, statuses };
    }
    throw new Error('the forwards did not reach both workers');
  }

  beforeAll(async () => {
    const serverCa = await createCA('prop-server-ca');
    const clientCa = await createCA('prop-client-ca');
    const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    first = await issueCertificate(clientCa, { commonName: 'first', usage: 'client' });
    second = await issueCertificate(clientCa, { commonName: 'second', usage: 'client' });
    third = await issueCertificate(clientCa, { commonName: 'third', usage: 'client' });
    target = await startMtlsTarget({ server: serverCert, clientCa: clientCa.certPem, requireClientCert: false });
    relay = await startRelay({ kind: 'embedded', workers: 2, targetCaPem: serverCa.certPem, env: { CERT_CACHE_TTL_SECONDS: '3600' } });
    expect(relay.workers).toHaveLength(2);
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
  });

  it('rotating a certificate (PUT with new material) makes the very next forward present the new one, on both workers', async () => {
    const account = newAccount();
    const created = await call(relay, 'POST', `/accounts/${account}/access/certificates`, {
      name: 'rotating',
      certificate: first.chainPem,
      private_key: first.keyPem,
      associated_hostnames: ['localhost'],
    });
    expect(created.status, created.text).toBe(201);
    const url = `${target.url}/rotate`;
    const before = await untilBothWorkersServed(account, url);
    expect(new Set(before.fingerprints)).toEqual(new Set([first.fingerprint256]));

    const rotated = await call(relay, 'PUT', `/accounts/${account}/access/certificates/${created.json.result.id}`, {
      associated_hostnames: ['localhost'],
      certificate: second.chainPem,
      private_key: second.keyPem,
    });
    expect(rotated.status, rotated.text).toBe(200);

    target.reset();
    const next = await forward(relay, account, url);
    expect(next.status).toBe(200);
    expect(target.requests[0]?.clientCert?.fingerprint256).toBe(second.fingerprint256);
    const after = await untilBothWorkersServed(account, url);
    expect(new Set(after.fingerprints)).toEqual(new Set([second.fingerprint256]));
  });

  it('deleting a mapping takes effect on the very next forward, on both workers', async () => {
    const account = newAccount();
    const add = async (name: string, leaf: Issued, hostnames: string[]): Promise<string> => {
      const res = await call(relay, 'POST', `/accounts/${account}/access/certificates`, { name, certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: hostnames });
      expect(res.status, res.text).toBe(201);
      return res.json.result.id as string;
    };
    await add('by-host', first, ['localhost']);
    const mappedId = await add('mapped', third, []);
    const url = `${target.url}/mapped`;
    const mapping = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName: 'billing', url, certificateId: mappedId });
    expect(mapping.status).toBe(201);
    const before = await untilBothWorkersServed(account, url, 'billing');
    expect(new Set(before.fingerprints)).toEqual(new Set([third.fingerprint256]));

    expect((await call(relay, 'DELETE', `/mtls/account/${account}/mappings/${mapping.json.id}`)).status).toBe(204);
    target.reset();
    await forward(relay, account, url, 'billing');
    expect(target.requests[0]?.clientCert?.fingerprint256).toBe(first.fingerprint256);
    const after = await untilBothWorkersServed(account, url, 'billing');
    expect(new Set(after.fingerprints)).toEqual(new Set([first.fingerprint256]));
  });

  it('hostname settings demanding a client certificate apply at once: 422 instead of a forward without one', async () => {
    const account = newAccount();
    const url = `${target.url}/settings`;
    const before = await untilBothWorkersServed(account, url);
    expect(new Set(before.statuses)).toEqual(new Set([200]));
    expect(new Set(before.fingerprints)).toEqual(new Set([null]));

    const put = await call(relay, 'PUT', `/accounts/${account}/access/certificates/settings`, {
      settings: [{ hostname: 'localhost', china_network: false, client_certificate_forwarding: true }],
    });
    expect(put.status, put.text).toBe(202);
    target.reset();
    const next = await forward(relay, account, url);
    expect(next.status).toBe(422);
    expect(next.json).toMatchObject({ code: 'certificate_required' });
    const after = await untilBothWorkersServed(account, url);
    expect(new Set(after.statuses)).toEqual(new Set([422]));
    expect(after.fingerprints).toEqual([]);
    expect(target.requests).toHaveLength(0);
  });
});
