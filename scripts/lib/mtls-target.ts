/**
 * An HTTPS server that demands client certificates and records everything it receives.
 * Used by the end-to-end tests and as the demo target of `npm start`, so it must not depend on vitest.
 */
import { EventEmitter } from 'node:events';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Pem } from './pki.ts';

export interface ClientCertInfo {
  subject: string;
  fingerprint256: string;
  serialNumber: string;
}

export interface RecordedRequest {
  method: string;
  /** Request target including the query string, exactly as on the wire. */
  path: string;
  /** node's `req.headers` (lower-case names). */
  headers: Record<string, string | string[]>;
  /** node's `req.rawHeaders`. */
  rawHeaders: string[];
  /** Exact bytes received. */
  body: Buffer;
  /** The certificate the client presented on this connection, or null when it presented none. */
  clientCert: ClientCertInfo | null;
  /**
   * true when the connection closed before the request body was complete (the body is then the
   * partial body, and the handler was not called).
   */
  aborted: boolean;
}

/** A TLS connection that failed before it was established (see MtlsTarget.tlsClientErrors). */
export interface TlsClientFailure {
  /**
   * The certificate verification result when the client's certificate was rejected, e.g.
   * 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' (unknown CA) or 'CERT_HAS_EXPIRED'; undefined otherwise.
   */
  authorizationError: string | undefined;
  /** The error's code, e.g. 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' (no certificate presented). */
  code: string | undefined;
  message: string;
}

export type TargetHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export interface MtlsTarget {
  /** e.g. `https://localhost:PORT`. */
  url: string;
  port: number;
  /** Every request that reached HTTP level, in the order their bodies completed. */
  readonly requests: RecordedRequest[];
  /** TLS connections accepted (`secureConnection` events) since start / last reset(). */
  readonly connections: number;
  /** Full (not resumed) TLS handshakes since start / last reset(). */
  readonly tlsHandshakes: number;
  /**
   * TLS connections that failed before being established (`tlsClientError`), in order.
   * Note: node verifies the client certificate after OpenSSL's handshake and then just closes the
   * connection (no TLS alert) when it is untrusted/expired; a missing certificate gets an alert.
   */
  readonly tlsClientErrors: TlsClientFailure[];
  /** The underlying server, for tests that need its events (e.g. `tlsClientError`). */
  readonly server: Server;
  setHandler(h: TargetHandler): void;
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  reset(): void;
  close(): Promise<void>;
}

export interface MtlsTargetOptions {
  /** Server certificate + key (the certificate should be valid for 'localhost' and 127.0.0.1). */
  server: Pem;
  /** PEM(s) of the CA(s) trusted for client certificates. */
  clientCa: string | string[];
  /**
   * Default true: a client without a valid certificate gets a TLS alert.
   * false: a certificate is requested but not required (nor verified); clientCert is null when none was presented.
   */
  requireClientCert?: boolean;
  /** Listen address, default '127.0.0.1'. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Default: echoHandler. */
  handler?: TargetHandler;
}

const DEFAULT_WAIT_MS = 10_000;

export async function startMtlsTarget(opts: MtlsTargetOptions): Promise<MtlsTarget> {
  const host = opts.host ?? '127.0.0.1';
  const requireClientCert = opts.requireClientCert ?? true;
  let handler: TargetHandler = opts.handler ?? echoHandler;
  const requests: RecordedRequest[] = [];
  const tlsClientErrors: TlsClientFailure[] = [];
  let connections = 0;
  let tlsHandshakes = 0;
  let closing: Promise<void> | undefined;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  /** Raw TCP sockets (including ones still in, or stuck before, the TLS handshake) and TLS sockets. */
  const sockets = new Set<Socket>();
  const certBySocket = new WeakMap<TLSSocket, ClientCertInfo | null>();

  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const server = createServer(
    {
      cert: opts.server.certPem,
      key: opts.server.keyPem,
      ca: opts.clientCa,
      requestCert: true,
      rejectUnauthorized: requireClientCert,
      keepAlive: true,
    },
    (req, res) => onRequest(req, res),
  );

  server.on('connection', (socket: Socket) => track(socket));
  server.on('secureConnection', (socket: TLSSocket) => {
    connections++;
    if (!socket.isSessionReused()) tlsHandshakes++;
    track(socket);
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const authorizationError = socket.authorizationError as unknown;
    tlsClientErrors.push({
      authorizationError:
        authorizationError === undefined || authorizationError === null
          ? undefined
          : String((authorizationError as { code?: unknown }).code ?? authorizationError),
      code: err.code,
      message: err.message,
    });
  });

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let recorded = false;
    const record = (aborted: boolean): void => {
      if (recorded) return;
      recorded = true;
      const entry: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: copyHeaders(req.headers),
        rawHeaders: [...req.rawHeaders],
        body: Buffer.concat(chunks),
        clientCert: clientCertOf(req.socket as TLSSocket),
        aborted,
      };
      requests.push(entry);
      events.emit('recorded');
      if (!aborted) runHandler(handler, entry, res);
    };
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => record(false));
    req.on('close', () => record(true)); // only effective when 'end' never came
    req.on('error', () => {}); // 'aborted' / ECONNRESET: recorded via 'close'
  }

  function clientCertOf(socket: TLSSocket): ClientCertInfo | null {
    let info = certBySocket.get(socket);
    if (info === undefined) {
      const x = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
      info = x ? { subject: x.subject, fingerprint256: x.fingerprint256, serialNumber: x.serialNumber } : null;
      certBySocket.set(socket, info);
    }
    return info;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => console.error('[mtls-target] server error:', err));

  const port = (server.address() as AddressInfo).port;

  const target: MtlsTarget = {
    url: `https://${urlHost(host)}:${port}`,
    port,
    requests,
    get connections() {
      return connections;
    },
    get tlsHandshakes() {
      return tlsHandshakes;
    },
    tlsClientErrors,
    server,
    setHandler(h: TargetHandler): void {
      handler = h;
    },
    waitForRequests(n: number, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
      if (requests.length >= n) return Promise.resolve();
      if (closing) return Promise.reject(new Error(`waitForRequests(${n}): target is closed (${requests.length} recorded)`));
      return new Promise<void>((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer);
          events.off('recorded', onRecorded);
          events.off('closed', onClosed);
        };
        const onRecorded = (): void => {
          if (requests.length >= n) {
            cleanup();
            resolve();
          }
        };
        const onClosed = (): void => {
          cleanup();
          reject(new Error(`waitForRequests(${n}): target closed with ${requests.length} request(s) recorded`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`waitForRequests(${n}): only ${requests.length} request(s) recorded after ${timeoutMs} ms`));
        }, timeoutMs);
        events.on('recorded', onRecorded);
        events.on('closed', onClosed);
      });
    },
    reset(): void {
      requests.length = 0;
      tlsClientErrors.length = 0;
      connections = 0;
      tlsHandshakes = 0;
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve()); // called (with an error) even if it was not listening
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        sockets.clear();
        events.emit('closed');
      });
      return closing;
    },
  };
  return target;
}

/** 200, application/json: `{ method, path, headers, bodyBase64, clientCert }`. */
export const echoHandler: TargetHandler = (req, res) => {
  const body = JSON.stringify({
    method: req.method,
    path: req.path,
    headers: req.headers,
    bodyBase64: req.body.toString('base64'),
    clientCert: req.clientCert,
  });
  res.statusCode = 200;
  res.setHeader('content-type', 'application/json');
  res.end(body);
};

export interface ScriptedStep {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Delay before the response headers (or before destroying, with `destroy`). */
  delayMs?: number;
  /** Destroy the connection without answering. */
  destroy?: boolean;
}

/**
 * Answers the i-th request it handles with `steps[min(i, last)]`. The counter lives in the returned
 * handler: call scriptedHandler() again (and setHandler) to start over; target.reset() does not.
 */
export function scriptedHandler(steps: ScriptedStep[]): TargetHandler {
  if (steps.length === 0) throw new TypeError('scriptedHandler: at least one step is required');
  const script = steps.map((s) => ({ ...s }));
  let calls = 0;
  return async (_req, res) => {
    const step = script[Math.min(calls++, script.length - 1)]!;
    if (step.delayMs !== undefined && step.delayMs > 0) {
      if (!(await delayUnlessClosed(step.delayMs, res))) return;
    }
    if (step.destroy) {
      (res.socket ?? res).destroy();
      return;
    }
    res.statusCode = step.status;
    for (const [name, value] of Object.entries(step.headers ?? {})) res.setHeader(name, value);
    res.end(step.body ?? '');
  };
}

function runHandler(handler: TargetHandler, req: RecordedRequest, res: ServerResponse): void {
  const fail = (err: unknown): void => {
    console.error('[mtls-target] handler failed:', err);
    if (!res.headersSent && !res.destroyed) {
      res.statusCode = 500;
      res.setHeader('content-type', 'text/plain');
      res.end(`mtls-target handler error: ${err instanceof Error ? err.message : String(err)}`);
    } else {
      res.destroy();
    }
  };
  try {
    const result = handler(req, res);
    if (result && typeof result.then === 'function') result.then(undefined, fail);
  } catch (err) {
    fail(err);
  }
}

/** Resolves true after `ms`, or false as soon as the response/connection is closed. */
function delayUnlessClosed(ms: number, res: ServerResponse): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(!res.destroyed);
    }, ms);
    res.once('close', onClose);
  });
}

function copyHeaders(headers: IncomingMessage['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? [...value] : value;
  }
  return out;
}

/** Loopback/wildcard listen addresses are reached as 'localhost' (SNI + hostname verification). */
function urlHost(host: string): string {
  if (host === '127.0.0.1' || host === '0.0.0.0' || host === '::') return 'localhost';
  return isIPv6(host) ? `[${host}]` : host;
}
