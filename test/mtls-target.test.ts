import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startMtlsTarget, scriptedHandler } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget, MtlsTargetOptions } from '../scripts/lib/mtls-target.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA, Issued } from '../scripts/lib/pki.ts';

let ca: CA;
let otherCa: CA;
let serverCert: Issued;
let clientA: Issued;
let clientB: Issued;
let foreignClient: Issued;
let expiredClient: Issued;
let futureClient: Issued;

beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createCA('Test Root CA'), createCA('Other CA')]);
  [serverCert, clientA, clientB, foreignClient, expiredClient, futureClient] = await Promise.all([
    issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }),
    issueCertificate(ca, { commonName: 'client-a', usage: 'client' }),
    issueCertificate(ca, { commonName: 'client-b', usage: 'client' }),
    issueCertificate(otherCa, { commonName: 'client-a', usage: 'client' }),
    issueCertificate(ca, { commonName: 'client-expired', usage: 'client', notAfter: new Date(Date.now() - 60_000) }),
    issueCertificate(ca, { commonName: 'client-future', usage: 'client', notBefore: new Date(Date.now() + 86_400_000) }),
  ]);
});

const targets: MtlsTarget[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.destroy()));
  await Promise.all(targets.splice(0).map((t) => t.close()));
});

async function target(opts: Partial<MtlsTargetOptions> = {}): Promise<MtlsTarget> {
  const t = await startMtlsTarget({ server: serverCert, clientCa: ca.certPem, ...opts });
  targets.push(t);
  return t;
}

function agent(client: Issued | null): Agent {
  const a = new Agent({
    connect: { ca: ca.certPem, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) },
  });
  agents.push(a);
  return a;
}

describe('pki', () => {
  it('issues certificates node accepts, with the documented metadata', () => {
    const caX = new X509Certificate(ca.certPem);
    expect(caX.ca).toBe(true);
    expect(caX.subject).toBe('CN=Test Root CA');
    expect(caX.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

    const leaf = new X509Certificate(clientA.certPem);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(caX)).toBe(true);
    expect(leaf.verify(caX.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(clientA.keyPem))).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(clientB.keyPem))).toBe(false);
    expect(clientA.subject).toBe('CN=client-a');
    expect(clientA.fingerprint256).toBe(leaf.fingerprint256);
    expect(clientA.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(clientA.serialNumber).toBe(leaf.serialNumber);
    expect(clientA.serialNumber).not.toBe(clientB.serialNumber);
    expect(clientA.chainPem).toBe(clientA.certPem + ca.certPem);
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // node exposes extKeyUsage here

    const server = new X509Certificate(serverCert.certPem);
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkHost('example.com')).toBeUndefined();

    const now = Date.now();
    const hour = 3_600_000;
    expect(Math.abs(leaf.validFromDate.getTime() - (now - hour))).toBeLessThan(5 * 60_000);
    expect(Math.abs(leaf.validToDate.getTime() - (now + 30 * 24 * hour))).toBeLessThan(5 * 60_000);
    const expired = new X509Certificate(expiredClient.certPem);
    expect(expired.validToDate.getTime()).toBeLessThan(now);
    expect(expired.validFromDate.getTime()).toBeLessThan(expired.validToDate.getTime());
    const future = new X509Certificate(futureClient.certPem);
    expect(future.validFromDate.getTime()).toBeGreaterThan(now);
    expect(future.validToDate.getTime()).toBeGreaterThan(future.validFromDate.getTime());
  });

  it('takes the common name verbatim', async () => {
    const odd = await createCA('Acme, Inc. "QA"=1+2 ü');
    expect(new X509Certificate(odd.certPem).subject).toBe('CN=Acme\\, Inc. \\"QA\\"=1\\+2 ü');
    const leaf = await issueCertificate(odd, { commonName: 'x', usage: 'client' });
    expect(new X509Certificate(leaf.certPem).checkIssued(new X509Certificate(odd.certPem))).toBe(true);
  });
});

describe('mtls-target', () => {
  it('records a 1 MB binary POST byte for byte, with path, query and client certificate', async () => {
    const t = await target();
    expect(t.url).toBe(`https://localhost:${t.port}`);
    const payload = randomBytes(1024 * 1024);
    const path = '/upload/item%2F1?b=%20two&a=1&a=2';
    const res = await request(t.url + path, {
      dispatcher: agent(clientA),
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/octet-stream', 'X-Trace': 'abc' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const echoed = (await res.body.json()) as {
      method: string;
      path: string;
      headers: Record<string, string>;
      bodyBase64: string;
      clientCert: unknown;
    };

    expect(t.requests).toHaveLength(1);
    const [rec] = t.requests;
    expect(rec?.method).toBe('POST');
    expect(rec?.path).toBe(path);
    expect(rec?.aborted).toBe(false);
    expect(rec?.body.length).toBe(payload.length);
    expect(rec?.body.equals(payload)).toBe(true);
    expect(rec?.headers['x-trace']).toBe('abc');
    expect(rec?.headers['content-length']).toBe(String(payload.length));
    expect(rec?.rawHeaders).toContain('X-Trace');
    expect(rec?.clientCert).toEqual({
      subject: 'CN=client-a',
      fingerprint256: clientA.fingerprint256,
      serialNumber: clientA.serialNumber,
    });

    expect(echoed.method).toBe('POST');
    expect(echoed.path).toBe(path);
    expect(echoed.headers['x-trace']).toBe('abc');
    expect(Buffer.from(echoed.bodyBase64, 'base64').equals(payload)).toBe(true);
    expect(echoed.clientCert).toEqual(rec?.clientCert);
  });

  it('tells client certificates apart per connection', async () => {
    const t = await target();
    await (await request(`${t.url}/a`, { dispatcher: agent(clientA) })).body.dump();
    await (await request(`${t.url}/b`, { dispatcher: agent(clientB) })).body.dump();
    expect(t.requests.map((r) => [r.path, r.clientCert?.fingerprint256])).toEqual([
      ['/a', clientA.fingerprint256],
      ['/b', clientB.fingerprint256],
    ]);
    expect(clientA.fingerprint256).not.toBe(clientB.fingerprint256);
  });

  type RefusalCase = [label: string, client: () => Issued | null, authorizationError?: string, code?: string];
  it.each<RefusalCase>([
    ['a certificate from another CA', () => foreignClient, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['an expired certificate', () => expiredClient, 'CERT_HAS_EXPIRED'],
    ['a not-yet-valid certificate', () => futureClient, 'CERT_NOT_YET_VALID'],
    ['no certificate', () => null, undefined, 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'],
  ])('refuses a client with %s at TLS level', async (_label, client, authorizationError, code) => {
    const t = await target();
    await expect(request(`${t.url}/nope`, { dispatcher: agent(client()) })).rejects.toThrow();
    await vi.waitFor(() => expect(t.tlsClientErrors).toHaveLength(1));
    expect(t.tlsClientErrors[0]?.authorizationError).toBe(authorizationError);
    if (code) expect(t.tlsClientErrors[0]?.code).toBe(code);
    expect(t.connections).toBe(0);
    expect(t.requests).toHaveLength(0);

    // Same target, valid certificate: accepted (so the refusal above was about the certificate).
    const ok = await request(`${t.url}/yes`, { dispatcher: agent(clientA) });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    expect(t.requests.map((r) => r.path)).toEqual(['/yes']);
  });

  it('records an upload cut off mid-body as aborted, with the bytes that arrived, without calling the handler', async () => {
    const t = await target();
    const handler = vi.fn();
    t.setHandler(handler);
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: t.port,
      servername: 'localhost',
      ca: ca.certPem,
      cert: clientA.certPem,
      key: clientA.keyPem,
    });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    const requestParsed = once(t.server, 'request');
    socket.write('POST /partial HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789');
    await requestParsed; // headers (and the 10 body bytes written with them) reached the server
    expect(t.requests).toHaveLength(0); // not recorded while the body is incomplete
    socket.destroy();
    await t.waitForRequests(1);
    expect(t.requests[0]).toMatchObject({ method: 'POST', path: '/partial', aborted: true });
    expect(t.requests[0]?.body.toString()).toBe('0123456789');
    expect(handler).not.toHaveBeenCalled();
  });

  it('with requireClientCert: false records requests without a certificate as clientCert null', async () => {
    const t = await target({ requireClientCert: false });
    const res = await request(`${t.url}/anon?x=1`, { dispatcher: agent(null), method: 'PUT', body: 'hello' });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const withCert = await request(`${t.url}/named`, { dispatcher: agent(clientA) });
    await withCert.body.dump();

    expect(t.requests).toHaveLength(2);
    expect(t.requests[0]).toMatchObject({ method: 'PUT', path: '/anon?x=1', clientCert: null });
    expect(t.requests[0]?.body.toString()).toBe('hello');
    expect(t.requests[1]?.clientCert?.fingerprint256).toBe(clientA.fingerprint256);
    expect(t.tlsClientErrors).toHaveLength(0);
  });

  it('scriptedHandler answers 503 then 200 (last step repeats), with headers and body', async () => {
    const t = await target({
      handler: scriptedHandler([
        { status: 503, headers: { 'retry-after': '1', 'x-step': ['one', 'uno'] }, body: 'busy' },
        { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from('ok') },
      ]),
    });
    const dispatcher = agent(clientA);
    const seen: Array<[number, string, unknown]> = [];
    for (let i = 0; i < 3; i++) {
      const res = await request(`${t.url}/s${i}`, { dispatcher });
      seen.push([res.statusCode, await res.body.text(), res.headers['x-step']]);
    }
    expect(seen).toEqual([
      [503, 'busy', ['one', 'uno']],
      [200, 'ok', undefined],
      [200, 'ok', undefined],
    ]);
    expect(t.requests.map((r) => r.path)).toEqual(['/s0', '/s1', '/s2']);
  });

  it('scriptedHandler can destroy the connection and delay the answer', async () => {
    const t = await target();
    t.setHandler(scriptedHandler([{ status: 200, destroy: true }, { status: 201, delayMs: 200, body: 'late' }]));
    const dispatcher = agent(clientA);
    await expect(request(`${t.url}/dropped`, { dispatcher, method: 'POST', body: 'x' })).rejects.toThrow();
    const started = performance.now();
    const res = await request(`${t.url}/late`, { dispatcher });
    expect(res.statusCode).toBe(201);
    expect(await res.body.text()).toBe('late');
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(t.requests.map((r) => [r.path, r.body.toString()])).toEqual([
      ['/dropped', 'x'],
      ['/late', ''],
    ]);
    expect(t.connections).toBe(2); // the destroyed connection was not reused
  });

  it('counts one TLS handshake for 20 sequential requests over one keep-alive Agent; reset() clears', async () => {
    const t = await target();
    const dispatcher = agent(clientA);
    for (let i = 0; i < 20; i++) {
      const res = await request(`${t.url}/r${i}`, { dispatcher });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    expect(t.requests).toHaveLength(20);
    expect(t.tlsHandshakes).toBe(1);
    // undici 8 may open a second connection for the second request (its first Client stays flagged
    // busy after connecting); that one resumes the TLS session, so it is not a full handshake.
    expect(t.connections).toBeGreaterThanOrEqual(1);
    expect(t.connections).toBeLessThanOrEqual(2);
    const connectionsBefore = t.connections;

    // Another Agent (no shared session cache): one more connection and full handshake.
    await (await request(`${t.url}/other`, { dispatcher: agent(clientB) })).body.dump();
    expect(t.connections).toBe(connectionsBefore + 1);
    expect(t.tlsHandshakes).toBe(2);

    const requestsRef = t.requests;
    t.reset();
    expect(t.requests).toHaveLength(0);
    expect(requestsRef).toBe(t.requests);
    expect([t.connections, t.tlsHandshakes]).toEqual([0, 0]);
    await (await request(`${t.url}/after-reset`, { dispatcher })).body.dump();
    expect(t.requests.map((r) => r.path)).toEqual(['/after-reset']);
    expect([t.connections, t.tlsHandshakes]).toEqual([0, 0]); // a kept-alive connection was reused
  });

  it('counts resumed TLS sessions as connections but not as handshakes', async () => {
    const t = await target();
    // keepAlive: false -> a new connection per request; node's Agent caches and resumes the session.
    const nodeAgent = new https.Agent({ keepAlive: false, ca: ca.certPem, cert: clientA.certPem, key: clientA.keyPem });
    try {
      for (let i = 0; i < 3; i++) {
        const status = await new Promise<number | undefined>((resolve, reject) => {
          https
            .get(`${t.url}/n${i}`, { agent: nodeAgent }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode));
            })
            .on('error', reject);
        });
        expect(status).toBe(200);
      }
    } finally {
      nodeAgent.destroy();
    }
    expect(t.connections).toBe(3);
    expect(t.tlsHandshakes).toBe(1);
    // The client certificate is still known on resumed connections.
    expect(t.requests.map((r) => r.clientCert?.fingerprint256)).toEqual(Array(3).fill(clientA.fingerprint256));
  });

  it('waitForRequests resolves on the n-th request and rejects on timeout', async () => {
    const t = await target();
    const waiting = t.waitForRequests(3);
    const dispatcher = agent(clientA);
    await Promise.all(
      [1, 2, 3].map(async (i) => (await request(`${t.url}/w${i}`, { dispatcher, method: 'POST', body: `b${i}` })).body.dump()),
    );
    await expect(waiting).resolves.toBeUndefined();
    expect(t.requests.map((r) => r.path).sort()).toEqual(['/w1', '/w2', '/w3']);
    await expect(t.waitForRequests(3)).resolves.toBeUndefined(); // already satisfied
    await expect(t.waitForRequests(4, 50)).rejects.toThrow(/only 3 request\(s\) recorded after 50 ms/);
  });

  it('close() returns promptly with idle keep-alive, in-flight and pre-handshake sockets open', async () => {
    const t = await target({ handler: scriptedHandler([{ status: 200 }, { status: 200, delayMs: 60_000 }]) });
    const idle = agent(clientA);
    await (await request(`${t.url}/idle`, { dispatcher: idle })).body.dump(); // connection stays open (keep-alive)
    const hanging = request(`${t.url}/hang`, { dispatcher: agent(clientB) });
    const hangingResult = hanging.then(
      () => 'resolved',
      () => 'rejected',
    );
    await t.waitForRequests(2);
    const raw: Socket = netConnect(t.port, '127.0.0.1'); // TCP only, never starts TLS
    raw.on('error', () => {});
    await once(raw, 'connect');
    const rawClosed = once(raw, 'close');

    const waiter = t.waitForRequests(10).then(
      () => 'resolved',
      (err: Error) => err.message,
    );
    const started = performance.now();
    let deadline: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      t.close().then(() => 'closed'),
      new Promise((resolve) => (deadline = setTimeout(resolve, 2_000, 'still open after 2 s'))),
    ]);
    clearTimeout(deadline);
    expect(outcome).toBe('closed');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(await waiter).toMatch(/target closed with 2 request\(s\) recorded/);
    expect(await hangingResult).toBe('rejected');
    await rawClosed;
    await t.close(); // idempotent
  });
});
