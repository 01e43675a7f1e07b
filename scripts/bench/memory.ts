// Memory probe, run as `node --expose-gc scripts/bench/memory.ts`: what 10,000 target origins (breakers) and
// 1,000 client certificates (connection pools with their TLS contexts, extra target CA set) cost a worker.
// Then the worst case for breakers: every one of those origins fails once, so each gets a breaker.
// Prints one JSON line.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { BreakerRegistry } from '../../services/worker/src/breakers.ts';
import { TargetClient } from '../../services/worker/src/outbound/target.ts';
import type { CertificateMaterial } from '../../packages/shared/src/store/types.ts';
import { createCA, issueCertificate } from '../lib/pki.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().external;
};

const origins = Number(process.argv[2] ?? 10_000);
const certificates = Number(process.argv[3] ?? 1_000);
const ca = await createCA('memory-probe-ca');
const materials: CertificateMaterial[] = [];
for (let i = 0; i < certificates; i++) {
  const leaf = await issueCertificate(ca, { commonName: `client-${i}`, usage: 'client' });
  materials.push({
    id: `cert-${i}`, accountId: 'a', name: `c${i}`, certificate: leaf.chainPem, privateKey: leaf.keyPem,
    fingerprint: randomBytes(32).toString('hex'), serialNumber: leaf.serialNumber, subject: leaf.subject, issuer: '',
    notBefore: new Date(0).toISOString(), expiresOn: new Date(Date.now() + 86_400_000).toISOString(),
    associatedHostnames: [], createdAt: '', updatedAt: '', version: 1,
  });
}
const before = heap();
const rssBefore = process.memoryUsage().rss;
const breakers = new BreakerRegistry(
  { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 30_000, rollingWindowMs: 10_000, maxBreakers: 10_000 },
  pino({ level: 'silent' }),
);
for (let i = 0; i < origins; i++) await breakers.fire(`https://h${i}.example:443`, async () => 200, () => false);
const client = new TargetClient({
  connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, totalTimeoutMs: 1000, responseLimitBytes: 1024,
  extraCa: [ca.certPem], maxAgents: 1_000,
});
for (const m of materials) client.agentFor(m);
const after = heap();
const rssAfter = process.memoryUsage().rss;
const healthyBreakers = breakers.size;
for (let i = 0; i < origins; i++) await breakers.fire(`https://h${i}.example:443`, async () => 503, (status) => status >= 500);
const failing = heap();
console.log(JSON.stringify({
  origins, certificates, breakers: healthyBreakers, agents: client.agentCount,
  heapAndExternalMB: (after - before) / 1048576, rssMB: (rssAfter - rssBefore) / 1048576,
  failingOrigins: origins, failingBreakers: breakers.size, failingBreakersMB: (failing - after) / 1048576, failingRssMB: (process.memoryUsage().rss - rssAfter) / 1048576,
}));
breakers.shutdown();
await client.close();
