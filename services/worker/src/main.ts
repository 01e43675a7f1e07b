import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '@mtls-relay/shared/config';
import { createKeyRing, resolveMasterKey } from '@mtls-relay/shared/crypto';
import { createLogger, errorSummary } from '@mtls-relay/shared/logging';
import { createRedis } from '@mtls-relay/shared/redis';
import { CertificateStore, createBackend, storeChangeChannel } from '@mtls-relay/shared/store';
import { BreakerRegistry } from './breakers.ts';
import { TargetClient } from './clients/target.ts';
import { createForwardProcessor } from './processors/forward.ts';
import { createMappingProcessor } from './processors/mapping.ts';
import { CertificateResolver } from './resolver.ts';
import { workerShutdown } from './shutdown.ts';
import { startWorkers } from './worker.ts';

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  console.error(`mtls-relay worker: ${(err as Error).message}`);
  process.exit(78);
}
const instanceId = randomUUID().slice(0, 8);
const logger = createLogger({ name: 'mtls-relay-worker', level: config.LOG_LEVEL, base: { instance: instanceId } });

const master = resolveMasterKey(config);
if (master.devKeyFile !== undefined) {
  logger.warn({ file: master.devKeyFile }, 'MASTER_KEY is not set: using a generated development key (set MASTER_KEY in production)');
}
const ring = createKeyRing(master.key, config.MASTER_KEYS_PREVIOUS);

const connection = createRedis(config.REDIS_URL, 'worker', logger, `worker-${instanceId}`);
const commands = createRedis(config.REDIS_URL, 'worker', logger, `worker-cmd-${instanceId}`);
const subscriber = createRedis(config.REDIS_URL, 'subscriber', logger, `worker-sub-${instanceId}`);

const backend = createBackend(config, { redis: commands, ring, logger });
const store = new CertificateStore(backend);
try {
  await backend.verify();
} catch (err) {
  logger.fatal(errorSummary(err), `the certificate store (${backend.kind}) is not usable`);
  process.exit(1);
}

const resolver = new CertificateResolver(store, { ttlMs: config.CERT_CACHE_TTL_SECONDS * 1000 });
const changes = storeChangeChannel(config.QUEUE_PREFIX);
subscriber.on('message', (_channel: string, accountId: string) => resolver.invalidate(accountId));
// Messages sent while disconnected are lost: forget everything cached when the subscription comes back.
subscriber.on('ready', () => resolver.invalidate());
await subscriber.subscribe(changes);

const target = new TargetClient({
  connectTimeoutMs: config.CONNECT_TIMEOUT_MS,
  headersTimeoutMs: config.HEADERS_TIMEOUT_MS,
  bodyTimeoutMs: config.BODY_TIMEOUT_MS,
  totalTimeoutMs: config.TARGET_TIMEOUT_MS,
  responseLimitBytes: config.RESPONSE_LIMIT_BYTES,
  extraCa: config.TARGET_CA_FILE === undefined ? [] : [readFileSync(config.TARGET_CA_FILE, 'utf8')],
  maxAgents: config.MAX_CERT_AGENTS,
});

const breakers = new BreakerRegistry(
  {
    errorThresholdPercentage: config.BREAKER_ERROR_PERCENT,
    volumeThreshold: config.BREAKER_VOLUME_THRESHOLD,
    resetTimeoutMs: config.BREAKER_RESET_MS,
    rollingWindowMs: config.BREAKER_WINDOW_MS,
    maxBreakers: config.MAX_BREAKERS,
  },
  logger,
);

const workers = startWorkers({
  processors: {
    forward: createForwardProcessor({
      ring,
      resolver,
      target,
      breakers,
      logger,
      allowHttp: config.ALLOW_HTTP_TARGETS,
      retryAfterCapSeconds: Math.floor(config.JOB_LOCK_MS / 1000),
    }),
    mapping: createMappingProcessor({ resolver }),
  },
  connection,
  publisher: commands,
  logger,
  settings: {
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WORKER_CONCURRENCY,
    lockDurationMs: config.JOB_LOCK_MS,
    retryBaseDelayMs: config.RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: 30_000,
  },
});
logger.info({ store: backend.kind, concurrency: config.WORKER_CONCURRENCY, prefix: config.QUEUE_PREFIX }, 'worker started');

const shutdown = workerShutdown({ workers, target, breakers, backend, redis: [connection, commands, subscriber] }, logger, config.JOB_LOCK_MS);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    void shutdown().then((clean) => {
      logger.info({ clean }, 'worker stopped');
      process.exit(clean ? 0 : 1);
    });
  });
}
