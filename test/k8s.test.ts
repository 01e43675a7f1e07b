/**
 * deploy/k8s is checked without a cluster: every object against the Kubernetes (kubernetes-models) and KEDA
 * (@kubernetes-models/keda) schemas, the settings against the configuration the code accepts, and the wiring
 * between the objects (probes, autoscalers, the queue KEDA watches — against a real Redis and BullMQ).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { queueOptions } from '../packages/shared/src/jobs.ts';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Namespace, ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { CONFIG_VARIABLES, loadConfig } from '../packages/shared/src/config.ts';
import { startTestRedis } from './support/redis.ts';
import { kedaTriggers } from '../scripts/lib/keda-triggers.ts';
import { shardLayout } from '../packages/shared/src/shards.ts';
import { JobQueues } from '../services/api/src/queueing/queue.ts';
import { createLogger } from '../packages/shared/src/logging.ts';
import type { TestRedis } from './support/redis.ts';

const DIR = fileURLToPath(new URL('../deploy/k8s/', import.meta.url));

type Validatable = { validate(): void };
const MODELS: Record<string, new (data: never) => Validatable> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface Container {
  name: string;
  command: string[];
  ports: Array<{ name: string; containerPort: number }>;
  env?: Array<{ name: string; value: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const objects: Array<K8sObject & { file: string }> = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((doc) => {
    expect(doc.errors, file).toEqual([]);
    return { ...(doc.toJS({ maxAliasCount: 100 }) as K8sObject), file };
  }),
);
const byKind = (kind: string, name: string): K8sObject => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name}`);
  return found;
};
const containerOf = (deployment: string): Container =>
  ((byKind('Deployment', deployment).spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]) as Container;
const config = byKind('ConfigMap', 'mtls-relay-config').data ?? {};
const secret = byKind('Secret', 'mtls-relay-secrets').stringData ?? {};
/** What an operator puts in the Secret instead of the examples. */
const realSecrets = { ...secret, MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), AUTH_JWT_SECRET: 'y'.repeat(44) };

describe('deploy/k8s', () => {
  it('every object is valid against its Kubernetes or KEDA schema', () => {
    expect(objects.length).toBeGreaterThanOrEqual(10);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.file}: ${o.apiVersion} ${o.kind} has no schema here`).toBeDefined();
      expect(() => new (Model as new (data: never) => Validatable)(o as never).validate(), `${o.file}: ${o.kind} ${o.metadata.name}`).not.toThrow();
      expect(o.metadata.namespace ?? 'mtls-relay').toBe('mtls-relay');
    }
  });

  it('an object with a mistake is rejected by the same schemas (the check can fail)', () => {
    const broken = structuredClone(byKind('Deployment', 'mtls-relay-api')) as K8sObject;
    (broken.spec as Record<string, unknown>)['replicas'] = 'two';
    expect(() => new Deployment(broken as never).validate()).toThrow(/replicas/);
    const scaled = structuredClone(byKind('ScaledObject', 'mtls-relay-worker')) as K8sObject;
    (scaled.spec as Record<string, unknown>)['triggers'] = [{ metadata: { listName: 'x' } }];
    expect(() => new ScaledObject(scaled as never).validate()).toThrow(/type/);
  });

  it('kustomization.yaml lists every manifest', () => {
    const kustomization = readFileSync(join(DIR, 'kustomization.yaml'), 'utf8');
    const listed = [...kustomization.matchAll(/^\s+- (\S+\.yaml)$/gm)].map((m) => m[1]).sort();
    expect(listed).toEqual([...files].sort());
  });

  it('every setting the manifests give the relay is one the configuration accepts, and the whole set validates', () => {
    for (const name of [...Object.keys(config), ...Object.keys(secret)]) expect(CONFIG_VARIABLES, name).toContain(name);
    for (const deployment of ['mtls-relay-api', 'mtls-relay-worker']) {
      const c = containerOf(deployment);
      expect(c.envFrom?.map((e) => e.configMapRef?.name ?? e.secretRef?.name)).toEqual(['mtls-relay-config', 'mtls-relay-secrets']);
      const env: Record<string, string> = { ...config, ...realSecrets };
      for (const e of c.env ?? []) {
        expect(CONFIG_VARIABLES, `${deployment}: ${e.name}`).toContain(e.name);
        env[e.name] = e.value;
      }
      const parsed = loadConfig(env);
      expect(parsed.NODE_ENV).toBe('production');
      expect(parsed.storeKind).toBe('vault');
    }
    // The example secret's placeholders are not usable keys: applying it unchanged stops the relay at start.
    expect(() => loadConfig({ ...config, ...secret })).toThrow(/MASTER_KEY/);
  });

  it('probes and scrape annotations use the ports the services listen on', () => {
    const api = containerOf('mtls-relay-api');
    const worker = containerOf('mtls-relay-worker');
    expect(api.command).toEqual(['node', 'services/api/src/main.ts']);
    expect(worker.command).toEqual(['node', 'services/worker/src/main.ts']);
    expect(api.ports).toEqual([{ name: 'http', containerPort: Number(api.env?.find((e) => e.name === 'PORT')?.value) }]);
    expect(worker.ports).toEqual([{ name: 'metrics', containerPort: Number(config['METRICS_PORT']) }]);
    for (const c of [api, worker]) {
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: c.ports[0]?.name });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: c.ports[0]?.name });
    }
  });

  it('the HPA scales the api Deployment; the KEDA ScaledObject scales the worker Deployment', () => {
    const hpa = byKind('HorizontalPodAutoscaler', 'mtls-relay-api').spec as { scaleTargetRef: { kind: string; name: string }; minReplicas: number };
    expect(hpa.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'mtls-relay-api' });
    expect(hpa.minReplicas).toBeGreaterThanOrEqual(2);
    const scaled = byKind('ScaledObject', 'mtls-relay-worker').spec as { scaleTargetRef: { name: string }; minReplicaCount: number };
    expect(scaled.scaleTargetRef.name).toBe('mtls-relay-worker');
    expect(scaled.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(() => byKind('Deployment', scaled.scaleTargetRef.name)).not.toThrow();
  });

  it('both Deployments run as a non-root user with a read-only root filesystem', () => {
    for (const name of ['mtls-relay-api', 'mtls-relay-worker']) {
      const pod = (byKind('Deployment', name).spec as { template: { spec: { securityContext: { runAsNonRoot: boolean }; containers: Array<{ securityContext: Record<string, unknown> }> } } }).template.spec;
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    }
  });
});

describe('the queue KEDA watches (real Redis, real BullMQ)', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => {
    await redis?.close();
  });

  it('each trigger listName is the wait list that grows with the queue, under the configured hash-tagged prefix', async () => {
    const prefix = config['QUEUE_PREFIX'] as string;
    expect(prefix).toMatch(/^\{[^{}]+\}$/);
    const triggers = (byKind('ScaledObject', 'mtls-relay-worker').spec as { triggers: Array<{ type: string; metadata: { listName: string } }> }).triggers;
    expect(triggers.map((t) => t.metadata.listName)).toEqual([`${prefix}:forward:wait`, `${prefix}:mapping:wait`]);
    const client = redis.client();
    // An external REDIS_URL may be shared: the test prefix is unique, the shape the same.
    const testPrefix = `{t${Date.now().toString(36)}}`;
    for (const queueName of ['forward', 'mapping']) {
      const queue = new Queue(queueName, { connection: client, ...queueOptions(testPrefix) });
      try {
        const listName = `${testPrefix}:${queueName}:wait`;
        expect(await client.llen(listName)).toBe(0);
        await queue.add(queueName, { v: 1 }, { removeOnComplete: true });
        await queue.add(queueName, { v: 1 }, { removeOnComplete: true });
        expect(await client.llen(listName)).toBe(2);
      } finally {
        await queue.obliterate({ force: true });
        await queue.close();
      }
    }
  });

  it('with QUEUE_SHARDS, npm run keda:triggers names every shard\'s wait lists, the ones the relay fills; with one shard, the manifest\'s', async () => {
    const prefix = config['QUEUE_PREFIX'] as string;
    const manifest = (byKind('ScaledObject', 'mtls-relay-worker').spec as { triggers: unknown[] }).triggers;
    expect(kedaTriggers({ queuePrefix: prefix, shards: 1, address: 'redis.mtls-relay.svc:6379', cluster: false })).toEqual(manifest);

    const testPrefix = `t${Date.now().toString(36)}`;
    const triggers = kedaTriggers({ queuePrefix: testPrefix, shards: 3, address: 'redis-0:6379', cluster: true });
    expect(triggers).toHaveLength(6);
    expect(triggers.map((t) => t.metadata['listLength'])).toEqual(['1', '11', '1', '11', '1', '11']);
    const client = redis.client();
    const queues = new JobQueues(client, { prefix: shardLayout(testPrefix, 3).prefixes, resultTtlSeconds: 60 }, createLogger({ name: 'test', level: 'silent' }));
    try {
      // Three mapping jobs go round the three shards: one in each shard's mapping wait list.
      for (let i = 0; i < 3; i++) await queues.enqueueMapping(queues.newMappingId(), { v: 1, tuples: [], requestId: `r${i}` });
      for (const shard of queues.shards) await shard.forward.add('forward', { v: 2 }, { removeOnComplete: true });
      for (const t of triggers) expect(await client.llen(t.metadata['listName'] as string), t.metadata['listName']).toBe(1);
    } finally {
      for (const q of queues.all) await q.obliterate({ force: true });
      await queues.close();
    }
  });
});
