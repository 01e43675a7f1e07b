import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Server as TcpServer } from 'node:net';
import { createServer as createTlsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { RelayError } from '@mtls-relay/shared/errors';
import { TargetNotAllowedError } from '@mtls-relay/shared/net-policy';
import { createCA, issueCertificate } from '../../../scripts/lib/pki.ts';
import { classifyTransportError, parseRetryAfter, retryClassOf } from './transport-errors.ts';

/** The error a real undici request raises, or a failure when it succeeds. */
async function failureOf(url: string, options: { agent?: Agent; signal?: AbortSignal } = {}): Promise<unknown> {
  try {
    const res = await request(url, { dispatcher: options.agent, signal: options.signal });
    await res.body.dump();
  } catch (err) {
    return err;
  }
  throw new Error(`${url} answered`);
}

const portOf = (server: TcpServer | HttpsServer): number => (server.address() as AddressInfo).port;
const listening = <S extends TcpServer | HttpsServer>(server: S): Promise<S> => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));

describe('classifyTransportError on errors that real connections raise', () => {
  let https: HttpsServer;
  let silent: TcpServer;
  let garbage: TcpServer;
  let closedPort: number;

  beforeAll(async () => {
    const ca = await createCA('outcome-test-ca');
    const server = await issueCertificate(ca, { commonName: 'target.test', usage: 'server', dnsNames: ['target.test'] });
    https = await listening(createTlsServer({ cert: server.chainPem, key: server.keyPem }, (_req, res) => res.end('ok')));
    // Accepts and never answers.
    silent = await listening(createTcpServer(() => undefined));
    // Answers something that is not HTTP.
    garbage = await listening(createTcpServer((socket) => socket.end('this is not HTTP\r\n\r\n')));
    const probe = await listening(createTcpServer());
    closedPort = portOf(probe);
    await new Promise((resolve) => probe.close(resolve));
  });

  afterAll(() => {
    for (const s of [https, silent, garbage]) s?.close();
  });

  it('a refused connection is target_unreachable, retried before anything was sent', async () => {
    const err = classifyTransportError(await failureOf(`http://127.0.0.1:${closedPort}/`));
    expect(err.code).toBe('target_unreachable');
    expect(err.detail).toContain('ECONNREFUSED');
    expect(retryClassOf(err.code)).toBe('before-send');
  });

  it("a server certificate from an unknown CA is target_certificate_invalid, never retried", async () => {
    const err = classifyTransportError(await failureOf(`https://127.0.0.1:${portOf(https)}/`));
    expect(err.code).toBe('target_certificate_invalid');
    expect(retryClassOf(err.code)).toBe('never');
  });

  it('a server certificate for another name is target_certificate_invalid', async () => {
    const agent = new Agent({ connect: { rejectUnauthorized: true, ca: [], servername: 'other.test' } });
    try {
      const err = classifyTransportError(await failureOf(`https://127.0.0.1:${portOf(https)}/`, { agent }));
      expect(err.code).toBe('target_certificate_invalid');
    } finally {
      await agent.close();
    }
  });

  it('no response headers in time is target_timeout, retried only after-send', async () => {
    const agent = new Agent({ headersTimeout: 200 });
    try {
      const err = classifyTransportError(await failureOf(`http://127.0.0.1:${portOf(silent)}/`, { agent }));
      expect(err.code).toBe('target_timeout');
      expect(err.detail).toContain('response headers');
      expect(retryClassOf(err.code)).toBe('after-send');
    } finally {
      await agent.close();
    }
  });

  it('the total deadline (AbortSignal.timeout) is target_timeout', async () => {
    const err = classifyTransportError(await failureOf(`http://127.0.0.1:${portOf(silent)}/`, { signal: AbortSignal.timeout(200) }));
    expect(err.code).toBe('target_timeout');
  });

  it('an answer that is not HTTP is target_protocol_error', async () => {
    const err = classifyTransportError(await failureOf(`http://127.0.0.1:${portOf(garbage)}/`));
    expect(err.code).toBe('target_protocol_error');
  });

  it("the SSRF guard's refusal is target_not_allowed", () => {
    expect(classifyTransportError(new TargetNotAllowedError('10.0.0.1 is a private address', 'private')).code).toBe('target_not_allowed');
  });
});

describe('classifyTransportError by error code (the shapes node and undici give)', () => {
  const withCode = (code: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(`boom ${code}`), { code, ...extra });

  it.each([
    ['ENOTFOUND', 'target_dns_error'],
    ['EAI_AGAIN', 'target_dns_error'],
    ['EHOSTUNREACH', 'target_unreachable'],
    ['ENETUNREACH', 'target_unreachable'],
    ['ETIMEDOUT', 'connect_timeout'],
    ['UND_ERR_CONNECT_TIMEOUT', 'connect_timeout'],
    ['UND_ERR_BODY_TIMEOUT', 'target_timeout'],
    ['CERT_HAS_EXPIRED', 'target_certificate_invalid'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'target_certificate_invalid'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'client_certificate_rejected'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'client_certificate_rejected'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'client_certificate_rejected'],
    ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'target_tls_error'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'target_tls_error'],
    ['ECONNRESET', 'target_connection_reset'],
    ['UND_ERR_SOCKET', 'target_connection_reset'],
    ['HPE_INVALID_CONSTANT', 'target_protocol_error'],
    ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'target_protocol_error'],
    ['UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'bad_request'],
    ['SOMETHING_NEW', 'internal'],
  ])('%s is %s', (code, expected) => {
    const err = classifyTransportError(withCode(code));
    expect(err).toBeInstanceOf(RelayError);
    expect(err.code).toBe(expected);
    expect((err.cause as { code: string }).code).toBe(code);
  });

  it('a reset whose cause is a TLS alert is classified by the alert; a plain reset stays a reset', () => {
    const alert = withCode('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    expect(classifyTransportError(withCode('UND_ERR_SOCKET', { cause: alert })).code).toBe('client_certificate_rejected');
    expect(classifyTransportError(withCode('ECONNRESET', { cause: withCode('SOMETHING_NEW') })).code).toBe('target_connection_reset');
  });

  it('goes by code and name, never by message', () => {
    expect(classifyTransportError(new Error('getaddrinfo ENOTFOUND example.com')).code).toBe('internal');
    expect(classifyTransportError(Object.assign(new Error('x'), { name: 'AbortError' })).code).toBe('target_timeout');
    expect(classifyTransportError(null).code).toBe('internal');
    expect(classifyTransportError('a string').code).toBe('internal');
  });

  it('a RelayError passes through unchanged', () => {
    const original = new RelayError('response_too_large');
    expect(classifyTransportError(original)).toBe(original);
  });
});

describe('retryClassOf and parseRetryAfter', () => {
  it.each([
    ['connect_timeout', 'before-send'],
    ['target_unreachable', 'before-send'],
    ['target_dns_error', 'before-send'],
    ['store_unavailable', 'before-send'],
    ['target_timeout', 'after-send'],
    ['target_connection_reset', 'after-send'],
    ['target_protocol_error', 'after-send'],
    ['target_tls_error', 'never'],
    ['client_certificate_rejected', 'never'],
    ['target_not_allowed', 'never'],
    ['response_too_large', 'never'],
  ] as const)('%s: %s', (code, expected) => {
    expect(retryClassOf(code)).toBe(expected);
  });

  it('reads seconds and HTTP dates, capped; nothing for absent or unreadable values', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('5', 30, now)).toBe(5);
    expect(parseRetryAfter(' 120 ', 30, now)).toBe(30);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', 30, now)).toBe(10);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', 30, now)).toBe(0);
    expect(parseRetryAfter('-1', 30, now)).toBeUndefined();
    expect(parseRetryAfter('soon', 30, now)).toBeUndefined();
    expect(parseRetryAfter(undefined, 30, now)).toBeUndefined();
  });
});
