import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { Agent, buildConnector } from 'undici';
import type { Dispatcher } from 'undici';
import type { HeaderList } from '@mtls-relay/shared/jobs';
import type { CertificateMaterial } from '@mtls-relay/shared/store';
import { trustForTargets } from '@mtls-relay/shared/trust';
import type { TargetUrl } from '@mtls-relay/shared/url';
import { classifyTransportError } from '../transport-errors.ts';
import type { ConnectGuard } from './guarded-lookup.ts';
import { Deadlines } from './deadlines.ts';
import { Exchange } from './exchange.ts';
import type { TargetResponse } from './exchange.ts';

export interface TargetClientOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  totalTimeoutMs: number;
  responseLimitBytes: number;
  /**
   * Extra CAs (PEM, one or more certificates each) trusted for target servers, on top of the bundled roots.
   * They are added to this process's default trust store, which every TLS context built here shares
   * (see @mtls-relay/shared/trust for how Redis and Vault connections stay out of it).
   */
  extraCa: string[];
  maxAgents: number;
  /**
   * Connect-time address policy (SSRF guard): IP literals are checked before dialling, names inside undici's
   * connect `lookup`, against the addresses actually dialled.
   */
  guard?: ConnectGuard;
}

export interface TargetRequest {
  url: TargetUrl;
  method: string;
  headers: HeaderList;
  body: Buffer;
  material: CertificateMaterial | null;
  /**
   * Root certificates of the account for this host: when any, the server's certificate is verified against
   * them alone (not the public roots, nor TARGET_CA_FILE).
   */
  roots?: readonly CertificateMaterial[];
}

/**
 * Sends requests to targets with undici. One Agent (keep-alive pool) per client-certificate identity with
 * its TLS context built once; a plain Agent when no certificate is presented. Agents live in a bounded
 * LRU and are closed on eviction. Redirects are never followed (undici's request does not follow them).
 */
export class TargetClient {
  readonly #opts: TargetClientOptions;
  readonly #agents = new Map<string, { agent: Agent; identity: string }>();
  /** Identity (certificate id and root ids) → its agent's key (the key of the versions in use). */
  readonly #keyOf = new Map<string, string>();
  readonly #alerts = new Map<number, string>();
  #plain: Agent | undefined;
  readonly #deadlines: Deadlines;

  constructor(opts: TargetClientOptions) {
    this.#opts = opts;
    this.#deadlines = new Deadlines(opts.totalTimeoutMs);
    if (opts.extraCa.length > 0) trustForTargets(opts.extraCa);
  }

  /** Number of certificate agents currently pooled (for metrics and tests). */
  get agentCount(): number {
    return this.#agents.size;
  }

  #newAgent(secureContext: SecureContext): Agent {
    const guard = this.#opts.guard;
    // The guard's lookup needs the port (the relay's own port is refused), so one connector per port.
    const connectors = new Map<number, buildConnector.connector>();
    const connectorFor = (port: number): buildConnector.connector => {
      let c = connectors.get(port);
      if (c === undefined) {
        if (connectors.size >= 64) connectors.clear();
        c = buildConnector({
          secureContext,
          timeout: this.#opts.connectTimeoutMs,
          allowH2: false,
          ...(guard === undefined ? {} : { lookup: guard.lookup(port) }),
        });
        connectors.set(port, c);
      }
      return c;
    };
    // With TLS 1.3 a server that refuses our client certificate sends its alert after the handshake; undici
    // then reports only "other side closed". Remember alerts per local port to tell that case apart.
    const connect: buildConnector.connector = (options, callback) => {
      const port = Number(options.port) || (options.protocol === 'http:' ? 80 : 443);
      try {
        guard?.checkLiteral(options.hostname, port);
      } catch (err) {
        callback(err as Error, null);
        return;
      }
      connectorFor(port)(options, (err, socket) => {
        socket?.on('error', (e: NodeJS.ErrnoException) => {
          if (typeof e.code === 'string' && e.code.startsWith('ERR_SSL_') && socket.localPort !== undefined) {
            this.#alerts.set(socket.localPort, e.code);
            if (this.#alerts.size > 1_000) this.#alerts.delete(this.#alerts.keys().next().value as number);
          }
        });
        if (err === null) callback(null, socket as NonNullable<typeof socket>);
        else callback(err, null);
      });
    };
    return new Agent({
      connect,
      allowH2: false,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      maxResponseSize: this.#opts.responseLimitBytes,
      headersTimeout: this.#opts.headersTimeoutMs,
      bodyTimeout: this.#opts.bodyTimeoutMs,
    });
  }

  agentFor(material: CertificateMaterial | null, roots: readonly CertificateMaterial[] = []): Agent {
    if (material === null && roots.length === 0) {
      this.#plain ??= this.#newAgent(createSecureContext({}));
      return this.#plain;
    }
    const sortedRoots = roots.length < 2 ? roots : [...roots].sort((a, b) => a.id.localeCompare(b.id));
    // One agent per identity (the client certificate and the set of roots); the versions tell a rotation.
    const identity = `${material?.id ?? '-'}|${sortedRoots.map((r) => r.id).join(',')}`;
    const versions = [material, ...sortedRoots].map((m) => (m === null ? '-' : `${m.version}:${m.fingerprint}`)).join('|');
    const key = `${identity}#${versions}`;
    const existing = this.#agents.get(key);
    if (existing !== undefined) {
      // Refresh LRU position.
      this.#agents.delete(key);
      this.#agents.set(key, existing);
      return existing.agent;
    }
    // No `ca` for a client certificate alone: a context given its own CA list parses every root into a store of
    // its own (about 0.8 MB and 6 ms per certificate); without one, it uses the process's default store, shared by
    // all contexts. With the account's roots for this host, those alone are trusted, as they should be.
    const context = createSecureContext({
      ...(material === null ? {} : { cert: material.certificate, key: material.privateKey }),
      ...(sortedRoots.length === 0 ? {} : { ca: sortedRoots.map((r) => r.certificate) }),
    });
    const agent = this.#newAgent(context);
    // An older version of the same identity is retired at once; beyond the bound, the least recent goes.
    const older = this.#keyOf.get(identity);
    if (older !== undefined) this.#retire(older);
    this.#agents.set(key, { agent, identity });
    this.#keyOf.set(identity, key);
    while (this.#agents.size > this.#opts.maxAgents) this.#retire(this.#agents.keys().next().value as string);
    return agent;
  }

  #retire(key: string): void {
    const entry = this.#agents.get(key);
    if (entry === undefined) return;
    this.#agents.delete(key);
    if (this.#keyOf.get(entry.identity) === key) this.#keyOf.delete(entry.identity);
    void entry.agent.close().catch(() => undefined);
  }

  async send(req: TargetRequest): Promise<TargetResponse> {
    const dispatcher = this.agentFor(req.material, req.roots);
    const flat: string[] = [];
    for (const [name, value] of req.headers) flat.push(name, value);
    const deadline = this.#deadlines.start();
    try {
      return await new Promise<TargetResponse>((resolve, reject) => {
        const exchange = new Exchange(this.#opts.responseLimitBytes, deadline.signal, resolve, (err, answered) =>
          reject(classifyTransportError(answered ? err : this.#withTlsAlert(err))),
        );
        dispatcher.dispatch(
          {
            origin: req.url.origin,
            path: req.url.pathAndQuery,
            method: req.method as Dispatcher.HttpMethod,
            headers: flat,
            body: req.body.length === 0 ? null : req.body,
            headersTimeout: this.#opts.headersTimeoutMs,
            bodyTimeout: this.#opts.bodyTimeoutMs,
          },
          exchange,
        );
      });
    } finally {
      deadline.done();
    }
  }

  #withTlsAlert(err: unknown): unknown {
    const e = err as { code?: unknown; socket?: { localPort?: number } } | null;
    const port = e?.socket?.localPort;
    if (e?.code !== 'UND_ERR_SOCKET' || port === undefined) return err;
    const alert = this.#alerts.get(port);
    if (alert === undefined) return err;
    this.#alerts.delete(port);
    return Object.assign(new Error(`TLS alert ${alert}`, { cause: err }), { code: alert });
  }

  async close(): Promise<void> {
    const all = [...[...this.#agents.values()].map((e) => e.agent), ...(this.#plain === undefined ? [] : [this.#plain])];
    this.#agents.clear();
    this.#keyOf.clear();
    this.#plain = undefined;
    await Promise.allSettled(all.map((a) => a.close()));
  }
}
