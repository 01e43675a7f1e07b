/**
 * docker-compose.yml, the Dockerfile and deploy/vault are checked without a container engine: the compose file
 * against the Compose Specification's JSON schema (as shipped in the dclint package), the relay's settings in it
 * against the configuration the code accepts, and the shape promised in the README (profiles, scaling, Vault).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, loadConfig } from '../packages/shared/src/config.ts';
import { DEMO_VARIABLES } from '../scripts/demo-compose.ts';
import { InterpolationError, interpolate, loadCompose } from './support/compose.ts';
import { importClosure } from './support/imports.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
// The schema declares draft-07 by its https URL, which Ajv does not know by that name; Ajv's default dialect is draft-07.
const { $schema: _dialect, ...schema } = JSON.parse(
  readFileSync(join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json'), 'utf8'),
) as Record<string, unknown>;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

/** What an operator exports before `docker compose up` (the README's quick start). */
const OPERATOR_ENV = {
  MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
  AUTH_JWT_SECRET: 'x'.repeat(44),
  VAULT_SECRET_ID: 'f'.repeat(48),
};

type Service = {
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  container_name?: string;
  volumes?: string[];
  depends_on?: Record<string, { condition: string; required?: boolean }>;
  healthcheck?: { test: string[] };
  build?: { target: string };
};
const compose = loadCompose(join(ROOT, 'docker-compose.yml'), OPERATOR_ENV);
const services = compose['services'] as Record<string, Service>;
const relayServices = Object.entries(services).filter(([, s]) => s.command?.[1]?.startsWith('services/') === true);

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    const ok = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('a file with a mistake is rejected by the same schema (the check can fail)', () => {
    const broken = structuredClone(compose) as { services: Record<string, Record<string, unknown>> };
    (broken.services['worker'] as Record<string, unknown>)['depends_on'] = { redis: { condition: 'when_it_feels_like_it' } };
    (broken.services['api'] as Record<string, unknown>)['restart_policy'] = 'always';
    expect(validate(broken)).toBe(false);
    expect(validate.errors?.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses to start without the secrets, and has no default for any of them', () => {
    for (const name of Object.keys(OPERATOR_ENV)) {
      expect(() => loadCompose(join(ROOT, 'docker-compose.yml'), { ...OPERATOR_ENV, [name]: undefined }), name).toThrow(InterpolationError);
    }
  });

  it('runs the api and the worker, and every setting it gives them is one the configuration accepts and validates', () => {
    expect(relayServices.map(([name]) => name).sort()).toEqual(['api', 'worker']);
    for (const [name, service] of relayServices) {
      const env = service.environment ?? {};
      expect(Object.keys(env).length, name).toBeGreaterThan(5);
      for (const variable of Object.keys(env)) expect(CONFIG_VARIABLES, `${name}: ${variable}`).toContain(variable);
      const config = loadConfig(env);
      expect(config.NODE_ENV).toBe('production');
      expect(config.storeKind).toBe('vault');
      expect(config.VAULT_ROLE_ID).toBeDefined();
      expect(existsSync(join(ROOT, service.command?.[1] ?? 'missing')), name).toBe(true);
    }
  });

  it('the demo service sets only relay or demo settings, and its script exists', () => {
    const demo = services['demo-target'] as Service;
    const allowed: readonly string[] = [...CONFIG_VARIABLES, ...DEMO_VARIABLES];
    for (const variable of Object.keys(demo.environment ?? {})) expect(allowed).toContain(variable);
    expect(demo.profiles).toEqual(['dev']);
    expect(existsSync(join(ROOT, 'scripts/demo-compose.ts'))).toBe(true);
  });

  it('the worker scales (--scale worker=N): no published port, no container name; its health check uses METRICS_PORT', () => {
    const worker = services['worker'] as Service;
    expect(worker.ports).toBeUndefined();
    expect(worker.container_name).toBeUndefined();
    expect(worker.healthcheck?.test.join(' ')).toContain(`:${worker.environment?.['METRICS_PORT']}/readyz`);
    const api = services['api'] as Service;
    expect(api.healthcheck?.test.join(' ')).toContain(`:${api.environment?.['PORT']}/readyz`);
  });

  it('Redis keeps its data (appendonly) and never evicts (noeviction)', () => {
    const command = (services['redis'] as Service).command?.join(' ') ?? '';
    expect(command).toContain('--appendonly yes');
    expect(command).toContain('--maxmemory-policy noeviction');
    expect((services['redis'] as Service).volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
  });

  it('Vault: dev mode only in the dev profile; the production variant keeps its data; an init step runs for both', () => {
    const dev = services['vault'] as Service;
    expect(dev.profiles).toEqual(['dev']);
    expect(dev.command).toEqual(['server', '-dev']);
    const prod = services['vault-server'] as Service;
    expect(prod.profiles).toEqual(['vault-server']);
    expect(prod.command).not.toContain('-dev');
    expect(prod.volumes).toContain('vault-data:/vault/data');
    const init = services['vault-init'] as Service;
    expect(init.profiles?.sort()).toEqual(['dev', 'vault-server']);
    expect(init.environment?.['RELAY_SECRET_ID']).toBe(OPERATOR_ENV.VAULT_SECRET_ID);
    for (const name of ['api', 'worker']) {
      expect((services[name] as Service).depends_on?.['vault-init']).toEqual({ condition: 'service_completed_successfully', required: false });
    }
  });
});

describe('deploy/vault and the Dockerfile', () => {
  it('the init script is valid shell', () => {
    const r = spawnSync('sh', ['-n', join(ROOT, 'deploy/vault/init.sh')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the relay policy grants its own KV v2 folder and token self-care, and nothing else', () => {
    const policy = readFileSync(join(ROOT, 'deploy/vault/mtls-relay-policy.hcl'), 'utf8');
    const paths = [...policy.matchAll(/^path "([^"]+)" \{\s*capabilities = \[([^\]]*)\]/gm)].map((m) => [m[1], (m[2] ?? '').replace(/[\s"]/g, '')]);
    expect(paths).toEqual([
      ['secret/data/mtls-relay/*', 'create,read,update'],
      ['secret/metadata/mtls-relay/*', 'list,delete'],
      ['auth/token/lookup-self', 'read'],
      ['auth/token/renew-self', 'update'],
    ]);
    expect(policy).not.toMatch(/sudo|"sys\/|"\*"/);
  });

  it('the Dockerfile is multi-stage on Node 24, and every stage that runs something runs as a non-root user', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage).toMatch(/^node:24[-.\w]*/);
    for (const target of ['runtime', 'demo']) {
      const stage = stages.find((s) => new RegExp(`^\\S+ AS ${target}\\b`).test(s)) ?? '';
      expect(stage, target).toMatch(/^USER node$/m);
      expect(stage.indexOf('USER node'), target).toBeLessThan(stage.indexOf('CMD'));
    }
    const targets = Object.values(services).map((s) => s.build?.target).filter((t) => t !== undefined);
    for (const t of new Set(targets)) expect(dockerfile).toMatch(new RegExp(`AS ${t}\\b`));
  });

  it('the demo image holds every file the demo script imports, and nothing from test/', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const demo = dockerfile.split(/^FROM /m).find((s) => /^\S+ AS demo\b/.test(s)) ?? '';
    const copied = [...demo.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] as string).split(/\s+/));
    expect(copied.some((c) => c === '.' || c.startsWith('test'))).toBe(false);
    const needed = importClosure('scripts/demo-compose.ts');
    expect(needed).toContain('scripts/lib/pki.ts');
    const missing = needed.filter((file) => !copied.some((c) => file === c || file.startsWith(`${c.replace(/\/$/, '')}/`)));
    expect(missing).toEqual([]);
  });
});

describe('compose interpolation (test support)', () => {
  it('follows the Compose rules for defaults, required values, nesting and $$', () => {
    expect(interpolate('${A:-x}/${B-y}/${C:-${D:-z}}/$$HOME', { B: '' })).toBe('x//z/$HOME');
    expect(interpolate('${A?}', { A: '' })).toBe('');
    expect(() => interpolate('${A:?needed}', { A: '' })).toThrow('A: needed');
  });
});
