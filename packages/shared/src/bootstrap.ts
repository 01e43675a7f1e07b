import { randomUUID } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { createKeyRing, resolveMasterKey } from './crypto.ts';
import type { KeyRing } from './crypto.ts';
import { createLogger, errorSummary } from './logging.ts';
import type { Logger } from './logging.ts';
import { TargetPolicy } from './net-policy.ts';

/** The part of `process` the start-up uses; main.ts passes its own `process`. */
export interface ProcessLike {
  env: Record<string, string | undefined>;
  exit(code: number): never;
  once(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  stderr: { write(text: string): unknown };
}

export interface Bootstrap {
  readonly config: Readonly<Config>;
  /** 8 hex characters naming this process in logs, Redis client names and reply channels. */
  readonly instanceId: string;
  readonly logger: Logger;
  readonly ring: KeyRing;
  /** A bad setting found after the configuration was read: says so on stderr and exits 78 (EX_CONFIG). */
  configError(err: unknown): never;
  /** A dependency that is not usable at start: logs it as fatal and exits 1. */
  fatal(err: unknown, message: string): never;
  /**
   * The SSRF target policy (TARGET_ALLOWLIST), refusing the relay's own listening sockets: every port of
   * `selfPorts` on loopback, HOST or any address of this machine's interfaces.
   */
  targetPolicy(selfPorts: () => Iterable<number | undefined>): TargetPolicy;
  /** On SIGTERM or SIGINT: marks the process as shutting down, runs `shutdown`, then exits 0 when clean, else 1. */
  onSignals(shutdown: () => Promise<boolean>): void;
  isShuttingDown(): boolean;
}

/**
 * The start of both services, in order: configuration (exit 78 with a message naming the variable), the
 * logger, the master key (warning when a generated development key is used) and its key ring. The rest of
 * the wiring stays in each service's main.ts.
 */
export function bootstrap(service: 'api' | 'worker', proc: ProcessLike): Bootstrap {
  const configError = (err: unknown): never => {
    proc.stderr.write(`mtls-relay ${service}: ${err instanceof Error ? err.message : String(err)}\n`);
    return proc.exit(78);
  };
  let config: Readonly<Config>;
  try {
    config = loadConfig(proc.env);
  } catch (err) {
    return configError(err);
  }
  const instanceId = randomUUID().slice(0, 8);
  const logger = createLogger({ name: `mtls-relay-${service}`, level: config.LOG_LEVEL, base: { instance: instanceId } });

  const master = resolveMasterKey(config);
  if (master.devKeyFile !== undefined) {
    logger.warn({ file: master.devKeyFile }, 'MASTER_KEY is not set: using a generated development key (set MASTER_KEY in production)');
  }
  const ring = createKeyRing(master.key, config.MASTER_KEYS_PREVIOUS);

  let shuttingDown = false;
  return {
    config,
    instanceId,
    logger,
    ring,
    configError,
    fatal(err, message) {
      logger.fatal(errorSummary(err), message);
      return proc.exit(1);
    },
    targetPolicy(selfPorts) {
      const localAddresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
      return new TargetPolicy({
        allowlist: config.TARGET_ALLOWLIST,
        self: { ports: selfPorts, addresses: [config.HOST, ...localAddresses] },
      });
    },
    onSignals(shutdown) {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        proc.once(signal, () => {
          shuttingDown = true;
          logger.info({ signal }, 'shutting down');
          void shutdown().then((clean) => {
            logger.info({ clean }, `${service} stopped`);
            proc.exit(clean ? 0 : 1);
          });
        });
      }
    },
    isShuttingDown: () => shuttingDown,
  };
}
