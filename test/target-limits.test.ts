/**
 * The worker's target client against a real HTTPS server: the response size limit (declared, or found while
 * reading a chunked body) and the whole-attempt deadline (one timer for every request in flight), each with its
 * error code, and the connection pool still serving afterwards.
 */
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CertificateMaterial } from '../packages/shared/src/store/types.ts';
import { parseTargetUrl } from '../packages/shared/src/url.ts';
import { TargetClient } from '../services/worker/src/outbound/target.ts';
import { Deadlines } from '../services/worker/src/outbound/deadlines.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';

const LIMIT = 64 * 1024;
const TOTAL_MS = 600;

describe('target client limits', () => {
  let server: Server;
  let origin: string;
  let client: TargetClient;
  let root: CertificateMaterial;
  const drips = new Set<NodeJS.Timeout>();
  /** Bytes sent so far on each /drip response, in arrival order. */
  const dripped: number[] = [];

  beforeAll(async () => {
    const ca = await createCA('target-limits-ca');
    const cert = new X509Certificate(ca.certPem);
    root = {
      id: 'root', accountId: 'acc', name: 'root', type: 'root', version: 1, certificate: ca.certPem,
      fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(), serialNumber: cert.serialNumber, subject: cert.subject, issuer: cert.issuer,
      notBefore: new Date(cert.validFrom).toISOString(), expiresOn: new Date(cert.validTo).toISOString(), associatedHostnames: ['127.0.0.1'], createdAt: '', updatedAt: '',
    };
    const pem = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    server = createServer({ cert: pem.certPem, key: pem.keyPem }, (req, res) => {
      const size = Number(new URL(req.url ?? '/', 'https://x').searchParams.get('size') ?? 0);
      if (req.url?.startsWith('/declared')) {
        // Declares the size, sends only the first bytes: the client must refuse on the header alone.
        res.writeHead(200, { 'content-length': String(size) });
        res.write(Buffer.alloc(16, 'a'));
        return;
      }
      if (req.url?.startsWith('/chunked')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (let sent = 0; sent < size; sent += 16 * 1024) res.write(Buffer.alloc(Math.min(16 * 1024, size - sent), 'b'));
        res.end();
        return;
      }
      if (req.url?.startsWith('/hints')) {
        // An interim answer first (103 Early Hints), then the final one with a repeated header.
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
        res.writeHead(201, [['content-type', 'text/plain'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
        res.end('final');
        return;
      }
      if (req.url?.startsWith('/drip')) {
        // A byte every 50 ms: never idle long enough for the body timeout, so only the whole-attempt deadline ends it.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const n = dripped.push(0) - 1;
        const t = setInterval(() => {
          res.write('.');
          dripped[n] = (dripped[n] ?? 0) + 1;
        }, 50);
        drips.add(t);
        res.on('close', () => clearInterval(t));
        return;
      }
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new TargetClient({ connectTimeoutMs: 2000, headersTimeoutMs: 3000, bodyTimeoutMs: 3000, totalTimeoutMs: TOTAL_MS, responseLimitBytes: LIMIT, extraCa: [], maxAgents: 10 });
  });

  afterAll(async () => {
    for (const t of drips) clearInterval(t);
    await client?.close();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  const send = (path: string) => client.send({ url: parseTargetUrl(`${origin}${path}`, { allowHttp: false }), method: 'GET', headers: [], body: Buffer.alloc(0), material: null, roots: [root] });

  it('reads a body up to the limit whole, in one or many chunks', async () => {
    const exact = await send(`/chunked?size=${LIMIT}`);
    expect(exact.status).toBe(200);
    expect(exact.body.length).toBe(LIMIT);
    expect(exact.body.every((b) => b === 0x62)).toBe(true);
    expect((await send('/small')).body.toString()).toBe('ok');
  });

  it('skips an interim 1xx answer and returns the final one: status, every header line, the body', async () => {
    const r = await send('/hints');
    expect(r.status).toBe(201);
    expect(r.body.toString()).toBe('final');
    expect(r.headers.filter(([n]) => n === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
    expect(r.headers.some(([n]) => n === 'link')).toBe(false);
  });

  it('refuses a declared size over the limit, and a chunked body that grows past it, as response_too_large', async () => {
    await expect(send(`/declared?size=${LIMIT + 1}`)).rejects.toMatchObject({ code: 'response_too_large' });
    await expect(send(`/chunked?size=${LIMIT + 1}`)).rejects.toMatchObject({ code: 'response_too_large' });
    // The pool still serves after the connections it had to drop.
    expect((await send('/small')).status).toBe(200);
  });

  it('ends a response that outlasts the whole-attempt deadline as target_timeout, each request on its own clock', async () => {
    const started = Date.now();
    const first = send('/drip');
    // The second starts once the first has been dripping for about half the deadline (6 bytes, 50 ms apart).
    await vi.waitFor(() => expect(dripped[0]).toBeGreaterThanOrEqual(TOTAL_MS / 2 / 50), { timeout: 5_000, interval: 10 });
    const secondStarted = Date.now();
    const second = send('/drip');
    await expect(first).rejects.toMatchObject({ code: 'target_timeout' });
    const firstMs = Date.now() - started;
    await expect(second).rejects.toMatchObject({ code: 'target_timeout' });
    const secondMs = Date.now() - secondStarted;
    expect(firstMs).toBeGreaterThanOrEqual(TOTAL_MS - 5);
    expect(secondMs).toBeGreaterThanOrEqual(TOTAL_MS - 5);
    // Well before the body timeout (3 s), which the drip keeps from firing.
    expect(Math.max(firstMs, secondMs)).toBeLessThan(2500);
    expect((await send('/small')).status).toBe(200);
  });
});

describe('Deadlines', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts only what is still running when its time comes, with a TimeoutError, and forgets what finished', () => {
    vi.useFakeTimers();
    const deadlines = new Deadlines(100);
    const a = deadlines.start();
    const b = deadlines.start();
    b.done();
    vi.advanceTimersByTime(40);
    const c = deadlines.start();
    expect(deadlines.size).toBe(2);
    vi.advanceTimersByTime(59);
    expect(a.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(a.signal.aborted).toBe(true);
    expect((a.signal.reason as DOMException).name).toBe('TimeoutError');
    expect(b.signal.aborted).toBe(false);
    expect(c.signal.aborted).toBe(false);
    vi.advanceTimersByTime(39);
    expect(c.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(c.signal.aborted).toBe(true);
    expect(deadlines.size).toBe(0);
    // Idle, then used again: a new timer for the new head.
    vi.advanceTimersByTime(1000);
    const d = deadlines.start();
    vi.advanceTimersByTime(100);
    expect(d.signal.aborted).toBe(true);
  });
});
