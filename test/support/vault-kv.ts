// KV v2 secrets engine for the Vault-compatible test server (shapes as in Vault's KV v2 HTTP API documentation).
// Pure logic: every operation returns the status and JSON body Vault would answer with.
import { randomUUID } from 'node:crypto';

/** `body: undefined` means "no body" (204). */
export interface Reply {
  status: number;
  body?: unknown;
}

export type Operation = 'read' | 'list' | 'write' | 'delete' | 'patch';

type Json = Record<string, unknown>;

interface Version {
  data: Json | null;
  createdTime: string;
  deletionTime: string;
  destroyed: boolean;
}

interface Secret {
  createdTime: string;
  updatedTime: string;
  currentVersion: number;
  oldestVersion: number;
  maxVersions: number;
  casRequired: boolean;
  customMetadata: Record<string, string> | null;
  versions: Map<number, Version>;
}

/** Vault keeps 10 versions when a secret's max_versions is 0 (the mount default). */
const DEFAULT_MAX_VERSIONS = 10;

export function envelope(fields: { data?: unknown; auth?: unknown; mountType?: string } = {}): Json {
  return {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: fields.data ?? null,
    wrap_info: null,
    warnings: null,
    auth: fields.auth ?? null,
    mount_type: fields.mountType ?? 'kv',
  };
}

export const fail = (status: number, ...errors: string[]): Reply => ({ status, body: { errors } });
const ok = (data: unknown): Reply => ({ status: 200, body: envelope({ data }) });
const noContent: Reply = { status: 204 };
const notFound = (): Reply => fail(404);
const unsupported = (what: 'path' | 'operation'): Reply =>
  fail(what === 'path' ? 404 : 405, `1 error occurred:\n\t* unsupported ${what}\n\n`);

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON merge patch (RFC 7396), as Vault's KV v2 PATCH applies it. */
function mergePatch(target: Json, patch: Json): Json {
  const out: Json = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = isObject(v) && isObject(out[k]) ? mergePatch(out[k] as Json, v) : v;
  }
  return out;
}

export class KvEngine {
  readonly #mounts = new Map<string, Map<string, Secret>>();

  constructor(mounts: string[]) {
    for (const m of mounts) this.#mounts.set(m.replace(/^\/+|\/+$/g, ''), new Map());
  }

  /** Longest mount that prefixes `path` (e.g. "secret/data/a" → mount "secret", rest "data/a"). */
  match(path: string): { mount: string; rest: string } | undefined {
    let best: string | undefined;
    for (const m of this.#mounts.keys()) {
      if ((path === m || path.startsWith(`${m}/`)) && (best === undefined || m.length > best.length)) best = m;
    }
    return best === undefined ? undefined : { mount: best, rest: path.slice(best.length + 1) };
  }

  handle(mount: string, rest: string, op: Operation, query: URLSearchParams, body: unknown): Reply {
    const store = this.#mounts.get(mount);
    if (store === undefined) return notFound();
    const slash = rest.indexOf('/');
    const [section, key] = slash < 0 ? [rest, ''] : [rest.slice(0, slash), rest.slice(slash + 1)];
    const input = isObject(body) ? body : {};
    switch (section) {
      case 'data':
        return this.#data(store, key, op, query, input, body);
      case 'metadata':
        return this.#metadata(store, key, op, input);
      case 'delete':
      case 'undelete':
      case 'destroy':
        if (op !== 'write') return unsupported('operation');
        return this.#versions(store.get(key), section, input);
      default:
        return unsupported('path');
    }
  }

  #data(store: Map<string, Secret>, key: string, op: Operation, q: URLSearchParams, input: Json, raw: unknown): Reply {
    const secret = store.get(key);
    if (op === 'read') {
      const wanted = Number(q.get('version') ?? 0);
      if (!Number.isInteger(wanted) || wanted < 0) return fail(400, 'invalid version');
      if (secret === undefined || secret.currentVersion === 0) return notFound();
      const n = wanted === 0 ? secret.currentVersion : wanted;
      const v = secret.versions.get(n);
      if (v === undefined) return notFound();
      const data = { data: v.deletionTime !== '' || v.destroyed ? null : v.data, metadata: versionMeta(secret, n, v) };
      return v.data === null || v.deletionTime !== '' ? { status: 404, body: envelope({ data }) } : ok(data);
    }
    if (op === 'write') {
      if (raw !== undefined && !isObject(raw)) return fail(400, 'error parsing JSON');
      if (input.data === undefined || input.data === null) return fail(400, 'no data provided');
      if (!isObject(input.data)) return fail(400, "error converting input data: 'data' must be an object");
      const cas = casOf(input);
      const current = secret?.currentVersion ?? 0;
      if (cas === undefined && secret?.casRequired) return fail(400, 'check-and-set parameter required for this call');
      if (cas !== undefined && cas !== current) {
        return fail(400, 'check-and-set parameter did not match the current version');
      }
      return ok(this.#addVersion(store, key, structuredClone(input.data)));
    }
    if (op === 'patch') {
      const latest = secret?.versions.get(secret.currentVersion);
      if (secret === undefined || latest?.data == null || latest.deletionTime !== '') return notFound();
      if (!isObject(input.data)) return fail(400, 'no data provided');
      const cas = casOf(input);
      if (cas !== undefined && cas !== secret.currentVersion) {
        return fail(400, 'check-and-set parameter did not match the current version');
      }
      return ok(this.#addVersion(store, key, mergePatch(latest.data, input.data)));
    }
    if (op === 'delete') {
      const latest = secret?.versions.get(secret.currentVersion);
      if (latest !== undefined && latest.deletionTime === '') latest.deletionTime = now();
      return noContent;
    }
    return unsupported('operation');
  }

  #addVersion(store: Map<string, Secret>, key: string, data: Json): Json {
    const t = now();
    let secret = store.get(key);
    if (secret === undefined) {
      secret = {
        createdTime: t,
        updatedTime: t,
        currentVersion: 0,
        oldestVersion: 0,
        maxVersions: 0,
        casRequired: false,
        customMetadata: null,
        versions: new Map(),
      };
      store.set(key, secret);
    }
    const n = secret.currentVersion + 1;
    const v: Version = { data, createdTime: t, deletionTime: '', destroyed: false };
    secret.versions.set(n, v);
    secret.currentVersion = n;
    secret.updatedTime = t;
    const keep = secret.maxVersions || DEFAULT_MAX_VERSIONS;
    for (const old of [...secret.versions.keys()].filter((k) => k <= n - keep)) secret.versions.delete(old);
    if (secret.versions.size < n) secret.oldestVersion = Math.min(...secret.versions.keys());
    return versionMeta(secret, n, v);
  }

  #metadata(store: Map<string, Secret>, key: string, op: Operation, input: Json): Reply {
    if (op === 'list') {
      const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
      const keys = new Set<string>();
      for (const k of store.keys()) {
        if (!k.startsWith(prefix) || k === prefix) continue;
        const rest = k.slice(prefix.length);
        const slash = rest.indexOf('/');
        keys.add(slash < 0 ? rest : rest.slice(0, slash + 1));
      }
      return keys.size === 0 ? notFound() : ok({ keys: [...keys].sort() });
    }
    const secret = store.get(key);
    if (op === 'read') {
      if (secret === undefined) return notFound();
      const versions: Json = {};
      for (const [n, v] of secret.versions) {
        versions[String(n)] = { created_time: v.createdTime, deletion_time: v.deletionTime, destroyed: v.destroyed };
      }
      return ok({
        cas_required: secret.casRequired,
        created_time: secret.createdTime,
        current_version: secret.currentVersion,
        custom_metadata: secret.customMetadata,
        delete_version_after: '0s',
        max_versions: secret.maxVersions,
        oldest_version: secret.oldestVersion,
        updated_time: secret.updatedTime,
        versions,
      });
    }
    if (op === 'delete') {
      store.delete(key);
      return noContent;
    }
    if (op === 'write') {
      const t = now();
      const s: Secret = secret ?? {
        createdTime: t,
        updatedTime: t,
        currentVersion: 0,
        oldestVersion: 0,
        maxVersions: 0,
        casRequired: false,
        customMetadata: null,
        versions: new Map(),
      };
      if (typeof input.max_versions === 'number') s.maxVersions = input.max_versions;
      if (typeof input.cas_required === 'boolean') s.casRequired = input.cas_required;
      if (isObject(input.custom_metadata)) s.customMetadata = input.custom_metadata as Record<string, string>;
      s.updatedTime = t;
      store.set(key, s);
      return noContent;
    }
    return unsupported('operation');
  }

  #versions(secret: Secret | undefined, action: 'delete' | 'undelete' | 'destroy', input: Json): Reply {
    const list = Array.isArray(input.versions) ? input.versions.map(Number) : [];
    if (list.length === 0) return fail(400, 'no version number provided');
    for (const n of list) {
      const v = secret?.versions.get(n);
      if (v === undefined) continue;
      if (action === 'delete' && v.deletionTime === '') v.deletionTime = now();
      if (action === 'undelete' && !v.destroyed) v.deletionTime = '';
      if (action === 'destroy') {
        v.destroyed = true;
        v.data = null;
      }
    }
    return noContent;
  }
}

function casOf(input: Json): number | undefined {
  const options = isObject(input.options) ? input.options : {};
  if (options.cas === undefined || options.cas === null) return undefined;
  const cas = Number(options.cas);
  return Number.isInteger(cas) ? cas : -1;
}

function versionMeta(secret: Secret, n: number, v: Version): Json {
  return {
    created_time: v.createdTime,
    custom_metadata: secret.customMetadata,
    deletion_time: v.deletionTime,
    destroyed: v.destroyed,
    version: n,
  };
}

const now = (): string => new Date().toISOString();
