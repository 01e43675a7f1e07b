import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '@mtls-relay/shared/config';
import { createKeyRing, resolveMasterKey } from '@mtls-relay/shared/crypto';
import { ERROR_CATALOGUE } from '@mtls-relay/shared/errors';
import { replyChannel } from '@mtls-relay/shared/jobs';
import { createLogger, errorSummary } from '@mtls-relay/shared/logging';
import { createRedis, waitForRedis } from '@mtls-relay/shared/redis';
import { CertificateStore, createBackend, storeChangeChannel } from '@mtls-relay/shared/store';
import { createApp } from './app.ts';
import { IdempotencyKeys } from './clients/idempotency.ts';
import { JobQueues } from './clients/queue.ts';
import { ResultWaiter } from './clients/waiter.ts';
import { apiShutdown } from './shutdown.ts';

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

const producer = createRedis(config.REDIS_URL, 'producer', logger, `api-${instanceId}`);
const subscriber = createRedis(config.REDIS_URL, 'subscriber', logger, `api-sub-${instanceId}`);
const queues = new JobQueues(producer, {
  prefix: config.QUEUE_PREFIX,
  forwardAttempts: config.FORWARD_ATTEMPTS,
  resultTtlSeconds: config.RESULT_TTL_SECONDS,
}, logger);
const waiter = new ResultWaiter(subscriber, replyChannel(config.QUEUE_PREFIX, instanceId), (id) => queues.finalOutcome('forward', id), logger);
const backend = createBackend(config, { redis: producer, ring, logger });
const changes = storeChangeChannel(config.QUEUE_PREFIX);
// Every change is announced so that all workers drop their cached copy at once.
const store = new CertificateStore(backend, {
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
  isShuttingDown: () => shuttingDown,
  readiness: [
    { name: 'redis', check: async () => ({ ok: (await producer.ping()) === 'PONG' }) },
    { name: 'store', check: () => backend.health() },
  ],
});

const server = createServer({ maxHeaderSize: config.MAX_HEADER_BYTES, requestTimeout: 60_000, headersTimeout: 20_000 }, app);
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
server.listen(config.PORT, config.HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PORT;
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
