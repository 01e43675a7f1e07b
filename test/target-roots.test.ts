/**
 * The worker's target client with an account's root certificates, in process over real TLS: the roots alone
 * verify the server, one pooled agent per identity (client certificate and set of roots), and a rotated root
 * retires the agent of its old version at once.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateMaterial } from '../packages/shared/src/store/types.ts';
import { parseTargetUrl } from '../packages/shared/src/url.ts';
import { TargetClient } from '../services/worker/src/outbound/target.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA, Pem } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';

function materialOf(id: string, version: number, pem: Pem & { chainPem?: string }, type: 'client' | 'root'): CertificateMaterial {
  const cert = new X509Certificate(pem.certPem);
  return {
    id, accountId: 'acc', name: id, type, version,
    certificate: pem.chainPem ?? pem.certPem,
    ...(type === 'client' ? { privateKey: pem.keyPem } : {}),
    fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(), serialNumber: cert.serialNumber, subject: cert.subject, issuer: cert.issuer,
    notBefore: new Date(cert.validFrom).toISOString(), expiresOn: new Date(cert.validTo).toISOString(),
    associatedHostnames: ['localhost'], createdAt: '', updatedAt: '',
  };
}

describe('target client with root certificates', () => {
  let privateCa: CA;
  let otherCa: CA;
  let target: MtlsTarget;
  let client: TargetClient;
  let identity: CertificateMaterial;

  beforeAll(async () => {
    privateCa = await createCA('target-roots-private');
    otherCa = await createCA('target-roots-other');
    const clientCa = await createCA('target-roots-client-ca');
    identity = materialOf('client-1', 1, await issueCertificate(clientCa, { commonName: 'target-roots-client', usage: 'client' }), 'client');
    const server = await issueCertificate(privateCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: false });
    client = new TargetClient({ connectTimeoutMs: 2000, headersTimeoutMs: 3000, bodyTimeoutMs: 3000, totalTimeoutMs: 4000, responseLimitBytes: 1 << 20, extraCa: [], maxAgents: 10 });
  });

  afterAll(async () => {
    await client?.close();
    await target?.close();
  });

  const send = (roots: CertificateMaterial[], material: CertificateMaterial | null = null) =>
    client.send({ url: parseTargetUrl(`${target.url}/r`, { allowHttp: false }), method: 'GET', headers: [], body: Buffer.alloc(0), material, roots });

  it('verifies the server with the roots alone, pools one agent per identity, and retires a rotated root’s agent', async () => {
    await expect(send([])).rejects.toMatchObject({ code: 'target_certificate_invalid' });
    expect(client.agentCount).toBe(0);

    expect((await send([materialOf('root-1', 1, privateCa, 'root')])).status).toBe(200);
    expect(client.agentCount).toBe(1);
    // The same identity and versions: the same agent.
    expect((await send([materialOf('root-1', 1, privateCa, 'root')])).status).toBe(200);
    expect(client.agentCount).toBe(1);

    // Rotated to another CA: a new agent that no longer trusts the server; the old version's agent is gone.
    await expect(send([materialOf('root-1', 2, otherCa, 'root')])).rejects.toMatchObject({ code: 'target_certificate_invalid' });
    expect(client.agentCount).toBe(1);

    // Any one of several roots may vouch; a client certificate with roots is an identity of its own.
    const both = [materialOf('root-2', 1, otherCa, 'root'), materialOf('root-3', 1, privateCa, 'root')];
    expect((await send(both)).status).toBe(200);
    expect((await send([...both].reverse())).status).toBe(200);
    expect(client.agentCount).toBe(2);
    target.reset();
    expect((await send(both, identity)).status).toBe(200);
    expect(client.agentCount).toBe(3);
    expect(target.requests[0]?.clientCert?.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(identity.fingerprint);
  });
});
