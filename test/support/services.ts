import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { watchApi } from './openapi.ts';
import { reapOnExit } from './reaper.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface LogLine {
  level?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface ServiceProcess {
  name: 'api' | 'worker';
  proc: ChildProcess;
  /** Parsed JSON log lines (stdout). */
  logs: LogLine[];
  /** Everything written to stdout and stderr, raw. */
  output: string[];
  /** The port it listens on: the API's, or the worker's health/metrics server's. */
  port: number;
  url: string;
  /** Sends `signal` and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

/**
 * Starts services/{api,worker}/src/main.ts as a real child process under the same Node binary as the tests.
 * Resolves when the service says it is up ("api listening" / "worker started").
 */
export async function startService(
  name: 'api' | 'worker',
  env: Record<string, string>,
  options: {
    timeoutMs?: number;
    /** 'after-start': once up, output is read and dropped, not parsed or kept (the bench: no load on its process). */
    discardOutput?: 'after-start';
  } = {},
): Promise<ServiceProcess> {
  const proc = reapOnExit(spawn(process.execPath, [...(process.env['SVC_NODE_FLAGS']?.split(' ').filter(Boolean).map((f) => f.replace('%n', name)) ?? []), `services/${name}/src/main.ts`], {
    cwd: ROOT,
    env: {
      PATH: process.env['PATH'] ?? '', NODE_ENV: 'test', LOG_LEVEL: 'info', PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1',
      // Marks the process as this test run's, so that `npm test` can tell if one outlived its test file.
      ...(process.env['MTLS_RELAY_TEST_RUN'] === undefined ? {} : { MTLS_RELAY_TEST_RUN: process.env['MTLS_RELAY_TEST_RUN'] }),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const logs: LogLine[] = [];
  const output: string[] = [];
  const listeners = new Set<(line: LogLine) => void>();
  let buffer = '';
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output.push(chunk);
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        const line = JSON.parse(text) as LogLine;
        logs.push(line);
        for (const l of listeners) l(line);
      } catch {
        // not JSON
      }
    }
  });
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const found = logs.find(predicate);
      if (found !== undefined) {
        resolve(found);
        return;
      }
      const onExit = (): void => {
        cleanup();
        reject(new Error(`${name} exited (${proc.exitCode}) before the expected log line:\n${output.join('')}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${name}: expected log line not seen within ${timeoutMs} ms:\n${output.join('').slice(-4000)}`));
      }, timeoutMs);
      const listener = (line: LogLine): void => {
        if (predicate(line)) {
          cleanup();
          resolve(line);
        }
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        proc.off('exit', onExit);
      };
      listeners.add(listener);
      proc.once('exit', onExit);
    });

  const ready = await waitForLog((l) => l.msg === (name === 'api' ? 'api listening' : 'worker started'), options.timeoutMs ?? 30_000);
  if (options.discardOutput === 'after-start') {
    proc.stdout?.removeAllListeners('data').on('data', () => undefined);
    proc.stderr?.removeAllListeners('data').on('data', () => undefined);
  }
  const port = typeof ready['port'] === 'number' ? ready['port'] : 0;
  // Every answer of an api of the suite is checked against the OpenAPI document (test/support/openapi-setup.ts).
  if (name === 'api') watchApi(`http://127.0.0.1:${port}`);
  return {
    name,
    proc,
    logs,
    output,
    port,
    url: `http://127.0.0.1:${port}`,
    waitForLog,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          resolve(proc.exitCode);
          return;
        }
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}
