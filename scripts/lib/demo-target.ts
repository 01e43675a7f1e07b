// The demo mTLS target of `npm start` (and of docker-compose's demo service): an HTTPS server on loopback that
// demands a client certificate from its own throw-away CA and answers with what it saw.
import type { ServerResponse } from 'node:http';
import { createCA, issueCertificate } from './pki.ts';
import type { Issued } from './pki.ts';
import { startMtlsTarget } from './mtls-target.ts';
import { freePort } from './ports.ts';

export interface DemoTarget {
  url: string;
  /** CA that signed the target's server certificate (the relay must trust it). */
  serverCaPem: string;
  /** A client certificate the target accepts: the demo certificate loaded into the relay. */
  client: Issued;
  close(): Promise<void>;
}

export async function startDemoTarget(preferredPort: number, host = '127.0.0.1'): Promise<DemoTarget> {
  const serverCa = await createCA('mtls-relay demo target CA');
  const clientCa = await createCA('mtls-relay demo client CA');
  const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost', 'demo-target'], ipAddresses: ['127.0.0.1'] });
  const client = await issueCertificate(clientCa, { commonName: 'demo-client', usage: 'client' });
  const handler = (req: { method: string; path: string; clientCert: { subject: string; fingerprint256: string } | null }, res: ServerResponse): void => {
    res.statusCode = 200;
    res.setHeader('content-type', 'application/json');
    res.end(`${JSON.stringify({ message: 'hello from the demo mTLS target', method: req.method, path: req.path, clientCertificate: req.clientCert }, null, 2)}\n`);
  };
  let target;
  try {
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: true, host, port: preferredPort, handler });
  } catch {
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem, requireClientCert: true, host, port: await freePort(), handler });
  }
  return { url: `https://127.0.0.1:${target.port}`, serverCaPem: serverCa.certPem, client, close: () => target.close() };
}
