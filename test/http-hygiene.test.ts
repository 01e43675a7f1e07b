/**
 * HTTP hygiene at the relay's front door and on the way back: bad forward URLs and
 * account ids, oversize bodies and headers, request smuggling shapes on a raw socket, slowloris, hop-by-hop
 * headers in both directions, CR/LF in LP-* headers. Every refusal is problem+json and the target is never
 * called.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Server as TlsServer } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { Issued } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection. */
  closed: boolean;
  ms: number;
}

/** Writes bytes on a fresh TCP connection and reads the first response until the server closes (or 15 s). */
function raw(port: number, data: string | Buffer): Promise<RawAnswer> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let closed = false;
    const finish = (): void => {
      // Interim 1xx answers (100 Continue) come first: read the final one.
      const text = Buffer.concat(chunks).toString('latin1').replace(/^(HTTP\/1\.1 1\d\d [^\r]*\r\n(?:[^\r]+\r\n)*\r\n)+/, '');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish();
    }, 15_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      finish();
    });
    socket.write(data);
  });
}

describe('HTTP hygiene', () => {
  let relay: Relay;
  let target: MtlsTarget;
  let rawTarget: TlsServer;
  let rawTargetPort = 0;
  let rawResponse = '';
  let serverCert: Issued;
  const account = `hyg${randomBytes(3).toString('hex')}`;
  const path = `/mtls/account/${account}`;

  const jobCount = async (): Promise<number> =>
    (await relay.client.keys(`${relay.prefix}:forward:*`)).filter((k) => /:forward:[0-9a-f-]{36}$/.test(k)).length;
  const head = (extra: string): string =>
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nLP-forward-url: ${target.url}/x\r\n${Object.entries(relay.auth()).map(([k, v]) => `${k}: ${v}\r\n`).join('')}${extra}`;

  beforeAll(async () => {
    const ca = await createCA('hygiene-ca');
    serverCert = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server: serverCert, clientCa: ca.certPem, requireClientCert: false });
    // A target that answers with exactly the bytes a test sets (hop-by-hop headers, ambiguous framing).
    rawTarget = createTlsServer({ cert: serverCert.certPem, key: serverCert.keyPem }, (socket) => {
      socket.once('data', () => socket.end(rawResponse));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => rawTarget.listen(0, '127.0.0.1', resolve));
    const a = rawTarget.address();
    rawTargetPort = typeof a === 'object' && a !== null ? a.port : 0;
    relay = await startRelay({
      targetCaPem: ca.certPem,
      env: { BODY_LIMIT_BYTES: '65536', MAX_HEADER_COUNT: '50', REQUEST_HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '5000' },
    });
  });

  afterAll(async () => {
    await relay?.close();
    await target?.close();
    await new Promise<void>((resolve) => (rawTarget === undefined ? resolve() : rawTarget.close(() => resolve())));
  });

  beforeEach(() => target.reset());

  describe('bad forward URLs and account ids (row 5)', () => {
    const badUrls = (): Array<[string, string | undefined]> => [
      ['missing', undefined],
      ['empty', ''],
      ['relative', '/just/a/path'],
      ['scheme-relative', `//127.0.0.1:${target.port}/`],
      ['file:', 'file:///etc/passwd'],
      ['gopher:', `gopher://127.0.0.1:${target.port}/_GET`],
      ['ftp:', 'ftp://127.0.0.1/'],
      ['javascript:', 'javascript:alert(1)'],
      ['plain http while not enabled', `http://127.0.0.1:${target.port}/`],
      ['user information', `https://a@127.0.0.1:${target.port}/`],
      ['user and password', `https://user:pass@127.0.0.1:${target.port}/`],
      ['no host', 'https:///path'],
      ['bad port', 'https://127.0.0.1:99999/'],
      ['invalid IPv4', 'https://1.2.3.4.5/'],
      ['space in path', `https://127.0.0.1:${target.port}/a b`],
    ];

    it('refuses each with 400 problem+json, enqueues nothing and never calls the target', async () => {
      const before = await jobCount();
      for (const [what, url] of badUrls()) {
        const res = await request(`${relay.api.url}${path}`, { headers: { ...relay.auth(), ...(url === undefined ? {} : { 'lp-forward-url': url }) } });
        const body = await res.body.text();
        expect(res.statusCode, `${what}: ${body}`).toBe(400);
        expect(res.headers['content-type'], what).toBe('application/problem+json');
        expect(JSON.parse(body), what).toMatchObject({ code: 'invalid_forward_url', status: 400 });
      }
      expect(await jobCount()).toBe(before);
      expect(target.requests).toHaveLength(0);
    });

    it.each([
      ['dot-dot', 'a..b'],
      ['encoded slash', 'a%2Fb'],
      ['colon', 'a:b'],
      ['NUL', 'a%00b'],
      ['newline', 'a%0Ab'],
      ['space', 'a%20b'],
      ['too long', 'a'.repeat(200)],
    ])('refuses an account id with %s with 400 invalid_account_id', async (_what, id) => {
      const res = await request(`${relay.api.url}/mtls/account/${id}`, { headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/` } });
      expect(res.statusCode).toBe(400);
      expect(JSON.parse(await res.body.text())).toMatchObject({ code: 'invalid_account_id' });
      expect(target.requests).toHaveLength(0);
    });

    it('accepts an all-digit site id', async () => {
      const res = await request(`${relay.api.url}/mtls/account/12345678`, { headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/digits` } });
      await res.body.text();
      expect(res.statusCode).toBe(200);
      expect(target.requests.map((r) => r.path)).toEqual(['/digits']);
    });
  });

  describe('size limits (row 6)', () => {
    it('a body over the limit → 413, declared or chunked; the target is never called', async () => {
      const big = randomBytes(65_537);
      const declared = await request(`${relay.api.url}${path}`, { method: 'POST', headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/big` }, body: big });
      expect(declared.statusCode).toBe(413);
      expect(JSON.parse(await declared.body.text())).toMatchObject({ code: 'body_too_large' });
      const chunked = await raw(relay.api.port, `${head('Transfer-Encoding: chunked\r\n\r\n')}${(65_537).toString(16)}\r\n${'a'.repeat(65_537)}\r\n0\r\n\r\n`);
      expect(chunked.status).toBe(413);
      expect(chunked.headers['content-type']).toBe('application/problem+json');
      const atLimit = await request(`${relay.api.url}${path}`, { method: 'POST', headers: { ...relay.auth(), 'lp-forward-url': `${target.url}/ok` }, body: big.subarray(0, 65_536) });
      await atLimit.body.text();
      expect(atLimit.statusCode).toBe(200);
      expect(target.requests.map((r) => r.path)).toEqual(['/ok']);
    });

    it.each([
      ['POST', '/mtls/account/acct1/mappings', 64 * 1024, 'problem'],
      ['POST', '/mtls/mapping', 5 * 1024 * 1024, 'problem'],
      ['PUT', '/accounts/acct1/access/certificates/settings', 1024 * 1024, 'envelope'],
    ] as const)('%s %s: a JSON body over its limit → 413 body_too_large, as documented', async (method, route, limit, shape) => {
      // A JSON string one byte over the limit (the answers are checked against the OpenAPI document, as every answer is).
      const body = JSON.stringify({ settings: 'x'.repeat(limit) });
      const res = await request(`${relay.api.url}${route}`, { method, headers: { ...relay.auth(), 'content-type': 'application/json' }, body });
      expect(res.statusCode).toBe(413);
      const answer = JSON.parse(await res.body.text()) as { code?: string; success?: boolean; errors?: Array<{ code: number }> };
      if (shape === 'problem') expect(answer.code).toBe('body_too_large');
      else expect(answer).toMatchObject({ success: false, errors: [{ code: 12008 }] });
    });

    it('headers over 16 KiB → 431 problem+json, and more header lines than allowed → 431', async () => {
      const large = await raw(relay.api.port, `${head(`X-Big: ${'b'.repeat(17 * 1024)}\r\n\r\n`)}`);
      expect(large.status).toBe(431);
      expect(JSON.parse(large.body)).toMatchObject({ code: 'headers_too_large' });
      const many = await raw(relay.api.port, `${head(Array.from({ length: 60 }, (_, i) => `X-H${i}: v\r\n`).join(''))}Content-Length: 0\r\n\r\n`);
      expect(many.status).toBe(431);
      expect(JSON.parse(many.body)).toMatchObject({ code: 'headers_too_large' });
      expect(target.requests).toHaveLength(0);
    });
  });

  describe('request smuggling shapes on a raw socket (row 7)', () => {
    it.each([
      ['Content-Length and Transfer-Encoding', 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['two differing Content-Lengths', 'Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
      ['two equal Content-Lengths', 'Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd'],
      ['a Content-Length list', 'Content-Length: 4, 4\r\n\r\nabcd'],
      ['a non-chunked Transfer-Encoding', 'Transfer-Encoding: gzip\r\n\r\nabcd'],
      ['chunked twice', 'Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n'],
      ['a space before the colon', 'Content-Length : 4\r\n\r\nabcd'],
      ['a bare LF line ending', 'X-A: 1\nContent-Length: 0\r\n\r\n'],
      ['an obs-fold continuation line', 'X-A: 1\r\n continued\r\nContent-Length: 0\r\n\r\n'],
      ['CR inside LP-authorization-override', 'LP-authorization-override: Bearer a\rInjected: 1\r\nContent-Length: 0\r\n\r\n'],
      ['LF inside LP-authorization-override', 'LP-authorization-override: Bearer a\nInjected: 1\r\nContent-Length: 0\r\n\r\n'],
      ['NUL inside LP-service-name', 'LP-service-name: a\0b\r\nContent-Length: 0\r\n\r\n'],
    ])('%s → 400 problem+json, the connection closed, never forwarded', async (_what, rest) => {
      const before = await jobCount();
      const res = await raw(relay.api.port, head(rest));
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.closed).toBe(true);
      expect(await jobCount()).toBe(before);
      expect(target.requests).toHaveLength(0);
    });

    it.each([
      ['LP-forward-url', () => `LP-forward-url: ${target.url}/other`],
      ['LP-service-name', () => 'LP-service-name: a\r\nLP-service-name: b'],
      ['LP-authorization-override', () => 'LP-authorization-override: Bearer A\r\nlp-authorization-override: Bearer B'],
      ['LP-stop-if-certificate-not-found', () => 'LP-stop-if-certificate-not-found: false\r\nLP-stop-if-certificate-not-found: false'],
      ['Idempotency-Key', () => 'Idempotency-Key: k1\r\nIdempotency-Key: k2'],
      ['Prefer', () => 'Prefer: respond-async\r\nPrefer: wait=5'],
    ])('%s sent twice (Node would join the two into "a, b") → 400 invalid_header, never forwarded', async (name, lines) => {
      const before = await jobCount();
      const res = await raw(relay.api.port, head(`${lines()}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`));
      expect(res.status, res.body).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(res.body)).toMatchObject({ code: 'invalid_header', detail: `${name.toLowerCase()} must be sent once` });
      expect(await jobCount()).toBe(before);
      expect(target.requests).toHaveLength(0);
    });

    it('Transfer-Encoding on HTTP/1.0, and HTTP/1.1 without Host → 400 problem+json', async () => {
      const http10 = await raw(relay.api.port, `POST ${path} HTTP/1.0\r\nLP-forward-url: ${target.url}/x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
      expect(http10.status).toBe(400);
      const noHost = await raw(relay.api.port, `GET ${path} HTTP/1.1\r\nLP-forward-url: ${target.url}/x\r\nConnection: close\r\n\r\n`);
      expect(noHost.status).toBe(400);
      expect(JSON.parse(noHost.body)).toMatchObject({ code: 'bad_request' });
      expect(target.requests).toHaveLength(0);
    });

    it('a client that never finishes its headers (slowloris) gets 408 at the configured timeout and is closed', async () => {
      const res = await raw(relay.api.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
      expect(res.status).toBe(408);
      expect(res.closed).toBe(true);
      expect(res.ms).toBeGreaterThanOrEqual(900);
      expect(res.ms).toBeLessThan(10_000);
    });
  });

  describe('hop-by-hop headers (rows 8 and 9)', () => {
    it('strips hop-by-hop, Host, Proxy-Authorization, Expect and LP-* headers from the request; the target sees its own Host', async () => {
      const res = await raw(
        relay.api.port,
        head(
          [
            'Connection: close, X-Named-By-Connection',
            'X-Named-By-Connection: drop',
            'Keep-Alive: timeout=5',
            'Upgrade: h2c',
            'Proxy-Authorization: Basic c2VjcmV0',
            'Proxy-Connection: keep-alive',
            'TE: trailers',
            'Trailer: X-T',
            'Expect: 100-continue',
            'LP-custom: x',
            'LP-service-name: svc',
            'X-Kept: yes',
            'Content-Length: 4',
            '',
            'body',
          ].join('\r\n'),
        ),
      );
      expect(res.status).toBe(200);
      const seen = target.requests[0];
      expect(seen?.body.toString()).toBe('body');
      expect(seen?.headers['x-kept']).toBe('yes');
      for (const name of ['x-named-by-connection', 'keep-alive', 'upgrade', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'expect', 'lp-custom', 'lp-service-name', 'lp-forward-url']) {
        expect(seen?.headers[name], name).toBeUndefined();
      }
      expect(seen?.headers['host']).toBe(`localhost:${target.port}`);
    });

    it("strips the target's hop-by-hop headers (and those its Connection names) from the response; the body is intact", async () => {
      rawResponse = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5, max=7\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: X-T\r\nX-A: 1\r\n\r\nhello';
      const res = await request(`${relay.api.url}${path}`, { headers: { ...relay.auth(), 'lp-forward-url': `https://localhost:${rawTargetPort}/hop` } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('hello');
      expect(res.headers['x-a']).toBe('1');
      for (const name of ['x-secret', 'proxy-authenticate', 'upgrade', 'trailer']) expect(res.headers[name], name).toBeUndefined();
      expect(res.headers['keep-alive'], "the relay's own connection may say keep-alive, never with the target's value").not.toBe('timeout=5, max=7');
    });

    it('a target response framed with both Transfer-Encoding and Content-Length is refused as ambiguous (502), never relayed', async () => {
      rawResponse = 'HTTP/1.1 200 OK\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad';
      const res = await request(`${relay.api.url}${path}`, { headers: { ...relay.auth(), 'lp-forward-url': `https://localhost:${rawTargetPort}/tecl` } });
      const body = await res.body.text();
      expect(res.statusCode).toBe(502);
      expect(JSON.parse(body)).toMatchObject({ code: 'target_protocol_error' });
      expect(body).not.toContain('bad');
    });
  });
});
