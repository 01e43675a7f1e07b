// A Vault-API-compatible HTTP server for tests: KV v2 mounts, token auth, AppRole login, token lookup/renew/create,
// sys/health, sealing and a "hang" mode. Shapes follow Vault's HTTP API documentation.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { duplexPair } from 'node:stream';
import { ListVerbRewriter, ORIGINAL_METHOD_HEADER } from './list-verb.ts';
import { DEFAULT_TTL, TokenStore, randomId } from './vault-auth.ts';
import { KvEngine, fail } from './vault-kv.ts';
import type { Operation, Reply } from './vault-kv.ts';

export interface VaultServerOptions {
  /** Default random. A root token never expires; renew-self on it → 400 like Vault. */
  rootToken?: string;
  /** Enables auth/approle/login. Tokens get `tokenTtlSeconds` (default 768h) and `renewable` (default true). */
  approle?: { roleId: string; secretId: string; tokenTtlSeconds?: number; renewable?: boolean };
  /** KV v2 mounts, default ['secret']. */
  mounts?: string[];
  /** Default '127.0.0.1'. */
  host?: string;
}

export interface VaultRequestRecord {
  /** As sent on the wire, e.g. LIST. */
  method: string;
  /** URL path without the query string, e.g. /v1/secret/data/a. */
  path: string;
  /** Query string with its leading '?', or ''. */
  query: string;
}

export interface VaultServer {
  /** e.g. http://127.0.0.1:54321 */
  addr: string;
  rootToken: string;
  /** Sealed: every route but sys/health → 503 {"errors":["Vault is sealed"]}; health → 503 with sealed: true. */
  seal(): void;
  unseal(): void;
  /** When on, requests (except sys/health) never get an answer. */
  hang(on: boolean): void;
  /** When on, requests (except sys/health) get a 200 whose body stops half-way: the connection is cut. */
  cut(on: boolean): void;
  /** Every issued non-root token becomes invalid → 403 permission denied. */
  revokeAllTokens(): void;
  /** Issues a token as auth/token/create would. ttlSeconds defaults to Vault's 768h; 0 means it never expires. */
  createToken(opts?: { ttlSeconds?: number; policies?: string[] }): string;
  /** Every request received, in order. */
  requests: VaultRequestRecord[];
  close(): Promise<void>;
}

const VERSION = '1.20.0';
const METHOD_TO_OPERATION: Record<string, Operation> = {
  GET: 'read',
  POST: 'write',
  PUT: 'write',
  DELETE: 'delete',
  PATCH: 'patch',
  LIST: 'list',
};

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    res.writeHead(reply.status).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Go's strconv.ParseBool true values, which Vault accepts for ?list=. */
const isTrue = (v: string | null): boolean => v !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);

export async function startVaultServer(opts: VaultServerOptions = {}): Promise<VaultServer> {
  const host = opts.host ?? '127.0.0.1';
  const rootToken = opts.rootToken ?? randomId('hvs.');
  const kv = new KvEngine(opts.mounts ?? ['secret']);
  const tokens = new TokenStore(rootToken);
  const requests: VaultRequestRecord[] = [];
  const clusterId = randomUUID();
  let sealed = false;
  let hanging = false;
  let cutting = false;
  const hung = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  function health(url: URL, res: ServerResponse): void {
    const code = (name: string, fallback: number): number => Number(url.searchParams.get(name) ?? fallback);
    const body = {
      initialized: true,
      sealed,
      standby: sealed,
      performance_standby: false,
      replication_performance_mode: sealed ? 'unknown' : 'disabled',
      replication_dr_mode: sealed ? 'unknown' : 'disabled',
      server_time_utc: Math.floor(Date.now() / 1000),
      version: VERSION,
      enterprise: false,
      // A sealed Vault does not know its cluster yet and leaves these out.
      ...(sealed ? {} : { cluster_name: `vault-cluster-${clusterId.slice(0, 8)}`, cluster_id: clusterId }),
    };
    send(res, { status: sealed ? code('sealedcode', 503) : code('activecode', 200), body });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const wireMethod = String(req.headers[ORIGINAL_METHOD_HEADER] ?? req.method);
    const url = new URL(req.url ?? '/', 'http://vault');
    requests.push({ method: wireMethod, path: url.pathname, query: url.search });
    if (!url.pathname.startsWith('/v1/')) return send(res, fail(404));
    const path = decodeURIComponent(url.pathname.slice('/v1/'.length)).replace(/^\/+/, '');
    if (path === 'sys/health' && (req.method === 'GET' || req.method === 'HEAD')) return health(url, res);
    if (hanging) {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (sealed) return send(res, fail(503, 'Vault is sealed'));
    if (cutting) {
      const text = JSON.stringify({ request_id: randomUUID(), data: { data: { cut: 'x'.repeat(1000) } } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.write(text.slice(0, 100));
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }

    const text = await readBody(req);
    let body: unknown;
    try {
      body = text.trim() === '' ? undefined : JSON.parse(text);
    } catch (err) {
      return send(res, fail(400, `failed to parse JSON input: ${(err as Error).message}`));
    }
    const input = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    let op = METHOD_TO_OPERATION[wireMethod];
    if (op === 'read' && isTrue(url.searchParams.get('list'))) op = 'list';
    if (op === undefined) return send(res, fail(405, '1 error occurred:\n\t* unsupported operation\n\n'));
    const noRoute = (): Reply => fail(404, `no handler for route "${path}". route entry not found.`);

    if (path === 'auth/approle/login') {
      return send(res, opts.approle === undefined ? noRoute() : tokens.approleLogin(opts.approle, input, op));
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const header = req.headers['x-vault-token'];
    const self = tokens.lookup((Array.isArray(header) ? header[0] : header) || bearer);
    if (self === undefined) return send(res, fail(403, 'permission denied'));
    if (path.startsWith('auth/token/')) return send(res, tokens.route(self, path, op, input));
    const mount = kv.match(path);
    if (mount === undefined) return send(res, noRoute());
    return send(res, kv.handle(mount.mount, mount.rest, op, url.searchParams, body));
  }

  const http = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, fail(500, String(err)));
      else res.destroy();
    });
  });

  // Raw TCP in front of the HTTP server so that the LIST method survives Node's HTTP parser: every byte from the
  // client goes through ListVerbRewriter into one side of an in-memory duplex pair whose other side the
  // http.Server treats as the connection.
  const front = createNetServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const [inner, outer] = duplexPair();
    socket.pipe(new ListVerbRewriter()).pipe(outer);
    outer.pipe(socket);
    const teardown = (): void => {
      sockets.delete(socket);
      socket.destroy();
      outer.destroy();
      inner.destroy();
    };
    socket.on('error', teardown).on('close', teardown);
    outer.on('error', teardown);
    inner.on('error', teardown);
    http.emit('connection', inner);
  });

  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(0, host, () => resolve());
  });
  const { port } = front.address() as AddressInfo;

  return {
    addr: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    rootToken,
    requests,
    seal: () => void (sealed = true),
    unseal: () => void (sealed = false),
    hang: (on) => void (hanging = on),
    cut: (on) => void (cutting = on),
    revokeAllTokens: () => tokens.revokeAll(),
    createToken: (o = {}) =>
      tokens.issue({
        policies: o.policies ?? ['default'],
        path: 'auth/token/create',
        displayName: 'token',
        meta: null,
        ttl: o.ttlSeconds ?? DEFAULT_TTL,
        renewable: true,
        orphan: false,
      }).id,
    close: async () => {
      for (const res of hung) res.destroy();
      for (const socket of sockets) socket.destroy();
      http.closeAllConnections();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}
