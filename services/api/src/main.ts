import { createServer } from 'node:http';
import { networkInterfaces } from 'node:os';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '@mtls-relay/shared/config';
import { createKeyRing, resolveMasterKey } from '@mtls-relay/shared/crypto';
import { ERROR_CATALOGUE } from '@mtls-relay/shared/errors';
import { replyChannel } from '@mtls-relay/shared/jobs';
import { createLogger, errorSummary } from '@mtls-relay/shared/logging';
import { TargetPolicy } from '@mtls-relay/shared/net-policy';
import { registerClusterGauges, timedBackend } from '@mtls-relay/shared/metrics';
import { queuesReady } from '@mtls-relay/shared/readiness';
import { createRedis, redisEndpoint, waitForRedis } from '@mtls-relay/shared/redis';
import { createHostResolver } from '@mtls-relay/shared/target-dns';
import { CertificateStore, createBackend, storeChangeChannel } from '@mtls-relay/shared/store';
import { createApp } from './app.ts';
import { ApiMetrics } from './metrics.ts';
import { IdempotencyKeys } from './clients/idempotency.ts';
import { JobQueues } from './clients/queue.ts';
import { ResultWaiter } from './clients/waiter.ts';
import { apiShutdown } from './shutdown.ts';
import { buildAuthentication } from './auth/setup.ts';
import { createTargetGuard } from './target-guard.ts';

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  console.error(`mtls-relay api: ${(err as Error).message}`);
  process.exit(78);
}
const instanceId = randomUUID().slice(0, 8);
const logger = createLogger({ name: 'mtls-relay-api', level: config.LOG_LEVEL, base: { instance: instanceId } });

const master = resolveMasterKey(config);
if (master.devKeyFile !== undefined) {
  logger.warn({ file: master.devKeyFile }, 'MASTER_KEY is not set: using a generated development key (set MASTER_KEY in production)');
}
const ring = createKeyRing(master.key, config.MASTER_KEYS_PREVIOUS);

const producer = createRedis(redisEndpoint(config), 'producer', logger, `api-${instanceId}`);
let auth;
try {
  auth = buildAuthentication(config, { redis: producer, logger });
} catch (err) {
  console.error(`mtls-relay api: ${(err as Error).message}`);
  process.exit(78);
}
if (auth.devSecretFile !== undefined) {
  logger.warn({ file: auth.devSecretFile }, 'no credentials configured: Bearer tokens signed with a generated development secret are accepted (mint one with npm run token)');
}
logger.info(auth.summary, 'authentication configured');
const subscriber = createRedis(redisEndpoint(config), 'subscriber', logger, `api-sub-${instanceId}`);
const queues = new JobQueues(producer, {
  prefix: config.QUEUE_PREFIX,
  forwardAttempts: config.FORWARD_ATTEMPTS,
  resultTtlSeconds: config.RESULT_TTL_SECONDS,
}, logger);
const waiter = new ResultWaiter(subscriber, replyChannel(config.QUEUE_PREFIX, instanceId), (id, name) => queues.finalOutcome(name, id), logger);
const backend = createBackend(config, { redis: producer, ring, logger });
const changes = storeChangeChannel(config.QUEUE_PREFIX);
// Every change is announced so that all workers drop their cached copy at once.
const metrics = new ApiMetrics();
registerClusterGauges(metrics.registry, { queues: Object.values(queues.queues), redis: producer, prefix: config.QUEUE_PREFIX });
const store = new CertificateStore(timedBackend(backend, metrics.registry), {
  onChange: async (accountId) => {
    await producer.publish(changes, accountId);
  },
});

try {
  await waitForRedis(producer, 10_000);
  await waiter.start();
} catch (err) {
  logger.fatal(errorSummary(err), `Redis at ${new URL(config.REDIS_URL).host} is not reachable`);
  process.exit(1);
}
try {
  await backend.verify();
} catch (err) {
  logger.fatal(errorSummary(err), `the certificate store (${backend.kind}) is not usable`);
  process.exit(1);
}

// SSRF guard: the relay's own listening socket (its actual port, once bound) is refused even if allowlisted.
let boundPort: number | undefined;
const localAddresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
const targetPolicy = new TargetPolicy({
  allowlist: config.TARGET_ALLOWLIST,
  // The worker's METRICS_PORT too (same settings): refused before anything is enqueued.
  self: { ports: () => [boundPort, config.METRICS_PORT], addresses: [config.HOST, ...localAddresses] },
});
const checkTarget = createTargetGuard(targetPolicy, createHostResolver({ servers: config.TARGET_DNS_SERVERS }));

let shuttingDown = false;
const app = createApp({
  logger,
  ring,
  store,
  queues,
  idempotency: new IdempotencyKeys(producer, config.QUEUE_PREFIX),
  waiter,
  bodyLimitBytes: config.BODY_LIMIT_BYTES,
  syncWaitMs: config.SYNC_WAIT_MS,
  allowHttp: config.ALLOW_HTTP_TARGETS,
  authenticate: auth.authenticate,
  checkTarget,
  maxHeaderCount: config.MAX_HEADER_COUNT,
  isShuttingDown: () => shuttingDown,
  metrics,
  readiness: [
    { name: 'redis', check: async () => ({ ok: (await producer.ping()) === 'PONG' }) },
    { name: 'store', check: () => store.backend.health() },
    { name: 'queues', check: () => queuesReady(producer, Object.values(queues.queues)) },
  ],
});

const server = createServer(
  {
    maxHeaderSize: config.MAX_HEADER_BYTES,
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    headersTimeout: config.REQUEST_HEADERS_TIMEOUT_MS,
    // Node checks the timeouts above only this often (default 30 s): keep the 408 close to its setting.
    connectionsCheckingInterval: Math.min(1_000, Math.max(100, Math.floor(config.REQUEST_HEADERS_TIMEOUT_MS / 4))),
    // The app answers a missing Host with problem+json (Node's own 400 has no body).
    requireHostHeader: false,
  },
  app,
);
// One above the limit, so that the app sees an excess and answers 431 instead of Node dropping lines silently.
server.maxHeadersCount = config.MAX_HEADER_COUNT + 1;
server.keepAliveTimeout = 65_000;
// Malformed requests rejected by Node's parser get a problem+json answer too, then the connection closes.
server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? null : 'bad_request';
  if (code === null) {
    socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const spec = ERROR_CATALOGUE[code];
  const body = JSON.stringify({ type: `urn:mtls-relay:problem:${code}`, title: spec.title, status: spec.status, code });
  socket.end(
    `HTTP/1.1 ${spec.status} ${spec.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
});
// CONNECT is not relayed (Node hands it to 'connect' and, without a listener, drops the socket unanswered).
server.on('connect', (_req, socket) => {
  const spec = ERROR_CATALOGUE.method_not_allowed;
  const body = JSON.stringify({ type: 'urn:mtls-relay:problem:method_not_allowed', title: spec.title, status: spec.status, code: 'method_not_allowed' });
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${spec.status} ${spec.title}\r\nContent-Type: application/problem+json\r\nAllow: GET, POST, PUT, PATCH, DELETE\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
});
server.listen(config.PORT, config.HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PORT;
  boundPort = port;
  logger.info({ port, host: config.HOST, store: backend.kind, prefix: config.QUEUE_PREFIX }, 'api listening');
});

const shutdown = apiShutdown(
  { server, waiter, queues, backend, redis: [producer, subscriber], drainMs: Math.min(config.SYNC_WAIT_MS, 10_000) },
  logger,
  config.SYNC_WAIT_MS + 5_000,
);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    void shutdown().then((clean) => {
      logger.info({ clean }, 'api stopped');
      process.exit(clean ? 0 : 1);
    });
  });
}
