import { createServer } from 'node:http';
import { bootstrap } from '@mtls-relay/shared/bootstrap';
import type { Bootstrap } from '@mtls-relay/shared/bootstrap';
import { ForwardRecords } from '@mtls-relay/shared/forward-records';
import { replyChannel } from '@mtls-relay/shared/jobs';
import { registerClusterGauges, timedBackend } from '@mtls-relay/shared/metrics';
import { rawProblemResponse } from '@mtls-relay/shared/problem';
import { redisReady, shardedQueuesReady } from '@mtls-relay/shared/readiness';
import { createRedis, isCluster, redisEndpoint, waitForRedis } from '@mtls-relay/shared/redis';
import { shardLayout } from '@mtls-relay/shared/shards';
import { createHostResolver } from '@mtls-relay/shared/target-dns';
import { CertificateStore, createBackend, storeChangeChannel } from '@mtls-relay/shared/store';
import { createApp } from './app.ts';
import { ApiMetrics } from './metrics.ts';
import { IdempotencyKeys } from './queueing/idempotency.ts';
import { ForwardDispatcher } from './queueing/dispatch.ts';
import { JobQueues } from './queueing/queue.ts';
import { ResultWaiter } from './queueing/waiter.ts';
import { apiShutdown } from './shutdown.ts';
import { buildAuthentication } from './auth/setup.ts';
import { createTargetGuard } from './target-guard.ts';

// Typed, so that TypeScript knows boot.fatal and boot.configError do not return.
const boot: Bootstrap = bootstrap('api', process);
const { config, instanceId, logger, ring } = boot;

const producer = createRedis(redisEndpoint(config), 'producer', logger, `api-${instanceId}`, config.REDIS_COMMAND_TIMEOUT_MS);
let auth;
try {
  auth = buildAuthentication(config, { redis: producer, logger });
} catch (err) {
  boot.configError(err);
}
if (auth.devSecretFile !== undefined) {
  logger.warn({ file: auth.devSecretFile }, 'no credentials configured: Bearer tokens signed with a generated development secret are accepted (mint one with npm run token)');
}
logger.info(auth.summary, 'authentication configured');
const subscriber = createRedis(redisEndpoint(config), 'subscriber', logger, `api-sub-${instanceId}`);
// QUEUE_SHARDS: one prefix per shard (a single one, QUEUE_PREFIX, by default); see shards.ts.
const shards = shardLayout(config.QUEUE_PREFIX, config.QUEUE_SHARDS);
const queues = new JobQueues(producer, { prefix: shards.prefixes, resultTtlSeconds: config.RESULT_TTL_SECONDS }, logger);
const records = new ForwardRecords(producer, shards.prefixes, { ring });
const waiter = new ResultWaiter(
  subscriber,
  // One reply channel per shard, in the shard's slot: a worker replies in the pipeline that records the outcome.
  shards.prefixes.map((prefix) => replyChannel(prefix, instanceId)),
  (id, name) => (name === 'forward' ? records.outcome(id) : queues.mappingOutcome(id)),
  logger,
  { sharded: isCluster(subscriber), pointed: (pointers) => records.recordedOutcomes(pointers) },
);
// Claims are pipelined: on a connection without BullMQ's scripts, which ioredis would copy into every pipeline.
const claims = createRedis(redisEndpoint(config), 'producer', logger, `api-idem-${instanceId}`, config.REDIS_COMMAND_TIMEOUT_MS);
const idempotency = new IdempotencyKeys(claims, shards.keyPrefix, config.REDIS_COMMAND_TIMEOUT_MS, { byAccount: shards.count > 1 });
const metrics = new ApiMetrics();
const dispatcher = new ForwardDispatcher(
  { ring, queues, waiter, idempotency, logger, onBatch: (n) => metrics.batchAdded(n) },
  {
    forwardAttempts: config.FORWARD_ATTEMPTS,
    resultTtlSeconds: config.RESULT_TTL_SECONDS,
    maxBatchBytes: config.FORWARD_BATCH_BYTES,
    maxInFlight: config.FORWARD_BATCHES_IN_FLIGHT,
    sealRequestsPerBatch: config.FORWARD_REQUEST_SEALING === 'batch',
    admissionMs: config.REDIS_COMMAND_TIMEOUT_MS,
    maxPending: 10_000,
  },
);
const backend = createBackend(config, { redis: producer, ring, logger });
const changes = storeChangeChannel(config.QUEUE_PREFIX);
// Every change is announced so that all workers drop their cached copy at once.
registerClusterGauges(metrics.registry, { queues: queues.all, redis: producer, prefix: shards.keyPrefix });
const store = new CertificateStore(timedBackend(backend, metrics.registry), {
  onChange: async (accountId) => {
    await producer.publish(changes, accountId);
  },
});

try {
  await Promise.all([waitForRedis(producer, 10_000), waitForRedis(claims, 10_000)]);
  await waiter.start();
} catch (err) {
  boot.fatal(err, `Redis at ${new URL(config.REDIS_URL).host} is not reachable`);
}
try {
  await backend.verify();
} catch (err) {
  boot.fatal(err, `the certificate store (${backend.kind}) is not usable`);
}

// SSRF guard: the relay's own listening socket (its actual port, once bound) is refused even if allowlisted.
let boundPort: number | undefined;
// The worker's METRICS_PORT too (same settings): refused before anything is enqueued.
const targetPolicy = boot.targetPolicy(() => [boundPort, config.METRICS_PORT]);
const checkTarget = createTargetGuard(targetPolicy, createHostResolver({ servers: config.TARGET_DNS_SERVERS }));

const app = createApp({
  logger,
  ring,
  store,
  queues,
  records,
  dispatcher,
  idempotency,
  waiter,
  bodyLimitBytes: config.BODY_LIMIT_BYTES,
  syncWaitMs: config.SYNC_WAIT_MS,
  allowHttp: config.ALLOW_HTTP_TARGETS,
  authenticate: auth.authenticate,
  checkTarget,
  maxHeaderCount: config.MAX_HEADER_COUNT,
  isShuttingDown: boot.isShuttingDown,
  metrics,
  readiness: [
    { name: 'redis', check: () => redisReady(producer) },
    { name: 'store', check: () => store.backend.health() },
    { name: 'queues', check: () => shardedQueuesReady(producer, queues.shards.map((s) => Object.values(s))) },
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
  socket.end(rawProblemResponse(code));
});
// CONNECT is not relayed (Node hands it to 'connect' and, without a listener, drops the socket unanswered).
server.on('connect', (_req, socket) => {
  socket.on('error', () => socket.destroy());
  socket.end(rawProblemResponse('method_not_allowed', { Allow: 'GET, POST, PUT, PATCH, DELETE' }));
});
server.listen(config.PORT, config.HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PORT;
  boundPort = port;
  logger.info({ port, host: config.HOST, store: backend.kind, prefix: config.QUEUE_PREFIX, shards: shards.count }, 'api listening');
});

const shutdown = apiShutdown(
  { server, waiter, queues, backend, redis: [producer, claims, subscriber], drainMs: Math.min(config.SYNC_WAIT_MS, 10_000) },
  logger,
  config.SYNC_WAIT_MS + 5_000,
);
boot.onSignals(shutdown);
