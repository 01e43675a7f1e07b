// `npm start`: the whole system on one machine for trying it out.
// - Redis: REDIS_URL, else the default 127.0.0.1:6379 if it answers, else a private redis-server (data in .data/redis).
// - The api and one worker as separate processes, on the embedded store (or Vault when VAULT_ADDR is set).
// - Unless DEMO=false (and never with NODE_ENV=production): a demo mTLS target on loopback, a demo client
//   certificate and mapping for account "demo", and a ready-to-paste curl command.
// - Outside production: an admin Bearer token (1 h) signed with AUTH_JWT_SECRET, or with the development secret
//   in .data/auth-jwt.secret (generated once, git-ignored), which the services are then given.
// Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { loadConfig } from '../packages/shared/src/config.ts';
import { createKeyRing, resolveMasterKey } from '../packages/shared/src/crypto.ts';
import { CertificateStore, createBackend, storeChangeChannel } from '../packages/shared/src/store/index.ts';
import { createLogger } from '../packages/shared/src/logging.ts';
import { devJwtSecret } from '../services/api/src/auth/dev-secret.ts';
import { mintToken } from './lib/tokens.ts';
import { startDemoTarget } from './lib/demo-target.ts';
import type { DemoTarget } from './lib/demo-target.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DATA = `${ROOT}.data`;
const DEFAULT_REDIS = 'redis://127.0.0.1:6379';
const children: ChildProcess[] = [];
let stopping = false;

function fail(message: string): never {
  console.error(`\nmtls-relay: ${message}\n`);
  void stopAll(1);
  throw new Error(message);
}

async function ping(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => {
    try {
      return statSync(`${dir}/${cmd}`).isFile();
    } catch {
      return false;
    }
  });
}

async function resolveRedis(): Promise<string> {
  const given = process.env['REDIS_URL'];
  if (given !== undefined && given !== '') {
    if (!(await ping(given))) fail(`REDIS_URL=${given} does not answer. Start Redis there, or unset REDIS_URL to let npm start run a private one.`);
    return given;
  }
  if (await ping(DEFAULT_REDIS)) return DEFAULT_REDIS;
  if (!onPath('redis-server')) {
    fail('no Redis answers at 127.0.0.1:6379 and redis-server is not installed.\n' +
      '  Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis),\n' +
      '  or run one with Docker: docker run -d -p 6379:6379 redis:7, or set REDIS_URL.');
  }
  const port = Number(process.env['DEV_REDIS_PORT'] ?? 6390);
  mkdirSync(`${DATA}/redis`, { recursive: true });
  const url = `redis://127.0.0.1:${port}`;
  if (!(await ping(url))) {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', `${DATA}/redis`, '--appendonly', 'yes', '--maxmemory-policy', 'noeviction', '--save', ''], { stdio: 'ignore' });
    children.push(proc);
    for (let i = 0; i < 100 && !(await ping(url)); i++) await new Promise((r) => setTimeout(r, 100));
    if (!(await ping(url))) fail(`the private redis-server on port ${port} did not start`);
    console.log(`started a private redis-server on ${url} (data in .data/redis)`);
  }
  return url;
}

/** A port that is free now (for a service configured with port 0, so that its /readyz can be found). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Where a service listening on `host` answers on this machine (the unspecified address → loopback). */
function probeBase(host: string, port: number): string {
  const h = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

const START_TIMEOUT_MS = 60_000;

/**
 * Starts a service and resolves once its `/readyz` answers 200 (Redis, the store, the queues and, for a worker,
 * its BullMQ workers are up). Readiness comes from the service itself, never from its log lines, so any
 * LOG_LEVEL works.
 */
async function startService(name: 'api' | 'worker', env: NodeJS.ProcessEnv, readyUrl: string): Promise<void> {
  const proc = spawn(process.execPath, [`services/${name}/src/main.ts`], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    if (process.env['START_QUIET'] !== 'true') process.stdout.write(chunk);
  });
  let ready = false;
  const exited = new Promise<never>((_resolve, reject) => {
    proc.once('exit', (code) => {
      if (!ready) reject(new Error(`${name} exited with code ${code} during start`));
      else if (!stopping) {
        console.error(`${name} exited (code ${code}); stopping`);
        void stopAll(1);
      }
    });
  });
  exited.catch(() => undefined);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const status = await fetch(readyUrl, { signal: AbortSignal.timeout(2_000) }).then(
      async (res) => {
        await res.body?.cancel();
        return res.status;
      },
      () => 0,
    );
    if (status === 200) {
      ready = true;
      return;
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
  }
  throw new Error(`${name} was not ready (${readyUrl} did not answer 200) within ${START_TIMEOUT_MS / 1000} s`);
}

async function seedDemo(config: ReturnType<typeof loadConfig>, redisUrl: string, demo: DemoTarget): Promise<void> {
  const logger = createLogger({ name: 'npm-start', level: 'warn' });
  const redis = new Redis(redisUrl);
  const ring = createKeyRing(resolveMasterKey(config).key, config.MASTER_KEYS_PREVIOUS);
  const backend = createBackend(config, { redis, ring, logger });
  const store = new CertificateStore(backend, { onChange: async (account) => void (await redis.publish(storeChangeChannel(config.QUEUE_PREFIX), account)) });
  try {
    await backend.verify();
    // Fresh demo material on every start: drop what an earlier run left for the demo account.
    for (const m of await store.listMappings('demo')) await store.deleteMapping('demo', m.id);
    for (const c of await store.listCertificates('demo')) await store.deleteCertificate('demo', c.id);
    const cert = await store.createCertificate('demo', { name: 'demo-client', certificate: demo.client.chainPem, privateKey: demo.client.keyPem });
    await store.createMapping('demo', { serviceName: 'demo-service', url: `${demo.url}/hello`, certificateId: cert.id });
  } finally {
    await backend.close();
    redis.disconnect();
  }
}

async function stopAll(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const live = children.filter((c) => c.exitCode === null && c.signalCode === null);
  // Services first (they drain), Redis last.
  await Promise.all(live.slice(1).reverse().map((c) => new Promise<void>((resolve) => {
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
  })));
  const first = live[0];
  if (first !== undefined) {
    await new Promise<void>((resolve) => {
      first.once('exit', () => resolve());
      first.kill('SIGTERM');
    });
  }
  await demoTarget?.close();
  process.exit(code);
}

let demoTarget: DemoTarget | undefined;

async function main(): Promise<void> {
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));
  const config = (() => {
    try {
      return loadConfig(process.env);
    } catch (err) {
      return fail((err as Error).message);
    }
  })();
  const redisUrl = await resolveRedis();
  const demoWanted = process.env['DEMO'] !== 'false' && config.NODE_ENV !== 'production';
  const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: redisUrl };
  // Create the development key before the services race to create it.
  resolveMasterKey(config);
  // Authentication is always on; in development a generated secret (.data/auth-jwt.secret) signs tokens.
  const jwtSecret = config.AUTH_JWT_SECRET ?? (config.NODE_ENV === 'production' ? undefined : devJwtSecret(config).secret);
  if (jwtSecret !== undefined) env['AUTH_JWT_SECRET'] = jwtSecret;

  if (demoWanted) {
    demoTarget = await startDemoTarget(Number(process.env['DEMO_TARGET_PORT'] ?? 9443));
    mkdirSync(`${DATA}/demo`, { recursive: true });
    writeFileSync(`${DATA}/demo/target-ca.pem`, demoTarget.serverCaPem);
    env['TARGET_CA_FILE'] = `${DATA}/demo/target-ca.pem`;
    // The demo target is https://localhost:PORT, and localhost is 127.0.0.1 and ::1: both must be allowed.
    env['TARGET_ALLOWLIST'] = [config.TARGET_ALLOWLIST.join(','), '127.0.0.1', '::1'].filter((s) => s !== '').join(',');
    await seedDemo(config, redisUrl, demoTarget);
  }

  // Ports configured as 0 are picked here, so that each service's /readyz can be polled.
  const port = config.PORT === 0 ? await freePort(config.HOST) : config.PORT;
  const metricsPort = config.METRICS_PORT === 0 ? await freePort(config.HOST) : config.METRICS_PORT;
  env['PORT'] = String(port);
  env['METRICS_PORT'] = String(metricsPort);
  await startService('worker', env, `${probeBase(config.HOST, metricsPort)}/readyz`);
  await startService('api', env, `${probeBase(config.HOST, port)}/readyz`);
  console.log(`\nmtls-relay is up: api on http://127.0.0.1:${port}, one worker, ${config.storeKind} store, Redis ${redisUrl}`);
  const token = jwtSecret === undefined || config.NODE_ENV === 'production'
    ? undefined
    : await mintToken({
        secret: jwtSecret,
        roles: [config.AUTH_ADMIN_ROLE],
        accounts: ['*'],
        ttlSeconds: 3600,
        subject: 'npm-start',
        issuer: config.AUTH_JWT_ISSUER,
        audience: config.AUTH_JWT_AUDIENCE,
        rolesClaim: config.AUTH_ROLES_CLAIM,
        accountsClaim: config.AUTH_ACCOUNTS_CLAIM,
      });
  if (token !== undefined) {
    console.log('\nAn admin token for every account, valid for 1 hour (more with: npm run token -- --help; docs/auth.md):\n');
    console.log(`export TOKEN=${token}`);
    console.log(`\nThe operator console: http://127.0.0.1:${port}/console (sign in with this token${demoTarget === undefined ? '' : ', account demo'}).`);
  }
  if (demoTarget !== undefined) {
    console.log('\nTry a forward through the relay to the demo mTLS target (it demands a client certificate):\n');
    const authHeader = token === undefined ? '' : ` -H 'Authorization: Bearer ${token}'`;
    console.log(`curl -sS -i http://127.0.0.1:${port}/mtls/account/demo${authHeader} -H 'LP-forward-url: ${demoTarget.url}/hello' -H 'LP-service-name: demo-service'`);
    console.log('\nThe answer carries LP-mtls: used and the certificate the target saw. Ctrl-C stops everything.\n');
  }
}

main().catch((err: unknown) => {
  console.error(`mtls-relay: ${(err as Error).message}`);
  void stopAll(1);
});
