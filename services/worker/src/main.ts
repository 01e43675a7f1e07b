import { readFileSync } from 'node:fs';
import { bootstrap } from '@mtls-relay/shared/bootstrap';
import type { Bootstrap } from '@mtls-relay/shared/bootstrap';
import { errorSummary } from '@mtls-relay/shared/logging';
import { shardOfId } from '@mtls-relay/shared/forward-ids';
import { JOB_NAMES, JOBS } from '@mtls-relay/shared/jobs';
import type { JobName } from '@mtls-relay/shared/jobs';
import { shardLayout } from '@mtls-relay/shared/shards';
import { createRegistry, registerClusterGauges, timedBackend } from '@mtls-relay/shared/metrics';
import { redisReady, shardedQueuesReady } from '@mtls-relay/shared/readiness';
import { createRedis, redisEndpoint } from '@mtls-relay/shared/redis';
import { createHostResolver } from '@mtls-relay/shared/target-dns';
import { CertificateStore, createBackend, storeChangeChannel } from '@mtls-relay/shared/store';
import { BreakerRegistry } from './breakers.ts';
import { createConnectGuard } from './outbound/guarded-lookup.ts';
import { TargetClient } from './outbound/target.ts';
import { createHealthServer, listen } from './health-server.ts';
import { WorkerMetrics } from './metrics.ts';
import { createExpiryProcessor, scheduleExpiryCheck } from './processors/expiry.ts';
import { createForwardProcessor } from './processors/forward.ts';
import { createMappingProcessor } from './processors/mapping.ts';
import { CertificateResolver } from './resolver.ts';
import type { Processor, Queue } from 'bullmq';
import { workerShutdown } from './shutdown.ts';
import { Limiter } from './limiter.ts';
import { ShardRecorders } from './shard-recorders.ts';
import { backoffDelay } from './retry.ts';
import { producerQueue, retryJobAdder, startWorkers } from './worker.ts';

// Typed, so that TypeScript knows boot.fatal and boot.configError do not return.
const boot: Bootstrap = bootstrap('worker', process);
const { config, instanceId, logger, ring } = boot;

const redisAt = redisEndpoint(config);
const connection = createRedis(redisAt, 'worker', logger, `worker-${instanceId}`);
const commands = createRedis(redisAt, 'worker', logger, `worker-cmd-${instanceId}`);
// Forward records and replies on a connection of their own: ioredis copies every script defined on a connection
// into each pipeline it makes, and BullMQ defines dozens on the connections it uses.
const recordsRedis = createRedis(redisAt, 'worker', logger, `worker-rec-${instanceId}`);
const subscriber = createRedis(redisAt, 'subscriber', logger, `worker-sub-${instanceId}`);

const registry = createRegistry('worker');
const backend = createBackend(config, { redis: commands, ring, logger });
const store = new CertificateStore(timedBackend(backend, registry));
try {
  await backend.verify();
} catch (err) {
  boot.fatal(err, `the certificate store (${backend.kind}) is not usable`);
}

const resolver = new CertificateResolver(store, { ttlMs: config.CERT_CACHE_TTL_SECONDS * 1000 });
const changes = storeChangeChannel(config.QUEUE_PREFIX);
subscriber.on('message', (_channel: string, accountId: string) => resolver.invalidate(accountId));
// Messages sent while disconnected are lost: forget everything cached when the subscription comes back.
subscriber.on('ready', () => resolver.invalidate());
await subscriber.subscribe(changes);

// SSRF guard at dial time. PORT is the API's port when both share their settings; with METRICS_PORT and this
// worker's own bound metrics port (known once listening), every one is refused on this host.
const selfPorts: Array<number | undefined> = [config.PORT, config.METRICS_PORT];
const targetPolicy = boot.targetPolicy(() => selfPorts);
const target = new TargetClient({
  guard: createConnectGuard(targetPolicy, createHostResolver({ servers: config.TARGET_DNS_SERVERS })),
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

// QUEUE_SHARDS: one prefix per shard (QUEUE_PREFIX alone by default); this worker consumes WORKER_SHARDS (all by default).
const shards = shardLayout(config.QUEUE_PREFIX, config.QUEUE_SHARDS);
const consumed = config.WORKER_SHARDS.length === 0 ? shards.prefixes.map((_, i) => i) : [...new Set(config.WORKER_SHARDS.map(Number))].sort((a, b) => a - b);
// The certificate-expiry job lives on shard 0 only: it runs once per relay.
const namesOn = (shard: number): JobName[] => JOB_NAMES.filter((name) => name !== 'expiry' || shard === 0);
// Producer-side handles on every shard's queues: retry jobs, the expiry job's scheduler, the gauges, readiness.
const shardQueues = shards.prefixes.map((prefix, shard) => namesOn(shard).map((name) => producerQueue(name, commands, prefix)));
const queues = shardQueues.flat();
for (const q of queues) q.on('error', (err) => logger.warn({ queue: q.name, prefix: q.opts.prefix, ...errorSummary(err) }, 'queue error'));
registerClusterGauges(registry, { queues, redis: commands, prefix: shards.keyPrefix });
const queueOf = (shard: number, name: JobName): Queue => (shardQueues[shard] ?? []).find((q) => q.name === JOBS[name].queue) as Queue;
const retryAdders = shards.prefixes.map((_, shard) => retryJobAdder(queueOf(shard, 'forward')));
const metrics = new WorkerMetrics(breakers, registry);

const retrySettings = { retryBaseDelayMs: config.RETRY_BASE_DELAY_MS, retryMaxDelayMs: 30_000 };
const processors = {
    forward: createForwardProcessor({
      ring,
      resolver,
      target,
      breakers,
      recorder: new ShardRecorders(recordsRedis, shards.prefixes, logger, {
        noteWithinMs: Math.min(1_000, Math.floor(config.JOB_LOCK_MS / 4)),
        ring,
        groupResponses: config.FORWARD_RESPONSE_SEALING === 'group',
      }),
      // A retry job goes to its forward's shard, where the forward's record lives.
      retry: (entry, next) => (retryAdders[shardOfId(entry.id, shards.count) ?? 0] as ReturnType<typeof retryJobAdder>)(entry, next),
      backoff: (attemptsMade, retryAfter) => backoffDelay(attemptsMade, retryAfter, retrySettings),
      limiter: new Limiter(config.WORKER_CONCURRENCY),
      observer: metrics,
      logger,
      allowHttp: config.ALLOW_HTTP_TARGETS,
      retryAfterCapSeconds: Math.floor(config.JOB_LOCK_MS / 1000),
      instanceId,
      takeoverWaitMs: config.TARGET_TIMEOUT_MS + 5_000,
    }),
    mapping: createMappingProcessor({ resolver }),
    expiry: createExpiryProcessor({ store, redis: commands, prefix: shards.keyPrefix, logger, intervalSeconds: config.CERT_EXPIRY_CHECK_SECONDS }),
} satisfies Record<JobName, Processor>;
// One BullMQ Worker per (job name, consumed shard). The forwards sent at once stay bounded per process by the
// limiter; the jobs held per shard are WORKER_CONCURRENCY shared out over the shards.
const perShard = Math.max(1, Math.ceil(config.WORKER_CONCURRENCY / consumed.length));
const workers = consumed.flatMap((shard) =>
  startWorkers({
    processors,
    observer: metrics,
    connection,
    publisher: commands,
    logger,
    instanceId,
    jobNames: namesOn(shard),
    settings: {
      prefix: shards.prefixes[shard] as string,
      concurrency: perShard,
      lockDurationMs: config.JOB_LOCK_MS,
      ...retrySettings,
    },
  }),
);

const health = createHealthServer({
  registry,
  logger,
  isShuttingDown: boot.isShuttingDown,
  checks: [
    { name: 'redis', check: () => redisReady(commands) },
    { name: 'store', check: () => store.backend.health() },
    { name: 'queues', check: () => shardedQueuesReady(commands, consumed.map((shard) => shardQueues[shard] ?? [])) },
    { name: 'workers', check: async () => ({ ok: workers.every((w) => w.isRunning()) }) },
  ],
});
let metricsPort;
try {
  metricsPort = await listen(health, config.METRICS_PORT, config.HOST);
  selfPorts.push(metricsPort);
  // Scheduled by the workers that consume shard 0, the only shard with an expiry queue.
  if (consumed.includes(0)) await scheduleExpiryCheck(queueOf(0, 'expiry'), config.CERT_EXPIRY_CHECK_SECONDS);
} catch (err) {
  boot.fatal(err, `the health/metrics server could not listen on ${config.HOST}:${config.METRICS_PORT}, or the expiry check could not be scheduled`);
}
// `port` is the health/metrics server's (probes and scrapers use it).
logger.info({ store: backend.kind, concurrency: config.WORKER_CONCURRENCY, prefix: config.QUEUE_PREFIX, shards: consumed, port: metricsPort }, 'worker started');

const shutdown = workerShutdown({ workers, target, breakers, backend, redis: [connection, commands, recordsRedis, subscriber] }, logger, config.JOB_LOCK_MS);
boot.onSignals(() => shutdown().finally(() => health.close()));
