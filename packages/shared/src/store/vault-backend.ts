import nodeVault from 'node-vault';
import { readFileSync } from 'node:fs';
import { infrastructureTlsContext } from '../trust.ts';
import type { Logger } from 'pino';
import { StoreError } from '../errors.ts';
import type { BackendHealth, DocumentBackend, StoredDocument } from './types.ts';

export interface VaultBackendOptions {
  addr: string;
  token?: string | undefined;
  roleId?: string | undefined;
  secretId?: string | undefined;
  mount: string;
  pathPrefix: string;
  namespace?: string | undefined;
  timeoutMs: number;
  caFile?: string | undefined;
  logger?: Logger | undefined;
}

interface VaultResponseError {
  response?: { statusCode?: number; body?: unknown };
}

const statusOf = (err: unknown): number | undefined => (err as VaultResponseError | null)?.response?.statusCode;

const PROBE_PATH = '_meta/probe';

/**
 * KV v2 through node-vault. Token or AppRole login; the token is renewed at two thirds of its TTL and,
 * with AppRole, replaced by a fresh login when renewal fails or Vault answers 403. Every call has an explicit
 * timeout. Outcomes are told apart by status code only: 404 absent, 400 on a check-and-set write conflict,
 * 403 denied, 429/5xx/no answer unavailable.
 */
export class VaultBackend implements DocumentBackend {
  readonly kind = 'vault' as const;
  readonly #client: nodeVault.client;
  readonly #opts: VaultBackendOptions;
  #renewTimer: NodeJS.Timeout | undefined;
  #loggingIn: Promise<void> | undefined;
  #closed = false;

  constructor(opts: VaultBackendOptions) {
    this.#opts = opts;
    // Over https without VAULT_CA_FILE, Vault is trusted on the CAs the process had at start, never
    // TARGET_CA_FILE (trust.ts). Over http there is no TLS, and no context to make.
    const requestOptions =
      opts.caFile !== undefined
        ? { ca: readFileSync(opts.caFile) }
        : new URL(opts.addr).protocol === 'https:'
          ? { agentOptions: { secureContext: infrastructureTlsContext() } }
          : {};
    this.#client = nodeVault({
      endpoint: opts.addr,
      ...(opts.token === undefined ? {} : { token: opts.token }),
      ...(opts.namespace === undefined ? {} : { namespace: opts.namespace }),
      // node-vault's debug output prints written data (private keys) when DEBUG is set: never let it.
      debug: () => undefined,
      rpDefaults: { timeout: opts.timeoutMs },
      requestOptions,
    } as nodeVault.VaultOptions);
  }

  #data(path: string): string {
    return `${this.#opts.mount}/data/${this.#opts.pathPrefix}/${path}`;
  }

  #metadata(path: string): string {
    return `${this.#opts.mount}/metadata/${this.#opts.pathPrefix}/${path}`;
  }

  async read(path: string): Promise<StoredDocument | null> {
    try {
      const body = (await this.#call(() => this.#client.read(this.#data(path)))) as {
        data?: { data?: Record<string, unknown> | null; metadata?: { version?: number } };
      };
      const data = body.data?.data;
      if (data === null || data === undefined) return null;
      return { data, version: Number(body.data?.metadata?.version ?? 0) };
    } catch (err) {
      if (err instanceof StoreError && err.status === 404) return null;
      throw err;
    }
  }

  async write(path: string, data: Record<string, unknown>, options: { cas?: number } = {}): Promise<number> {
    const payload = options.cas === undefined ? { data } : { data, options: { cas: options.cas } };
    try {
      const body = (await this.#call(() => this.#client.write(this.#data(path), payload))) as {
        data?: { version?: number };
      } | undefined;
      return Number(body?.data?.version ?? 0);
    } catch (err) {
      // We always send data, so a 400 on a check-and-set write is the version mismatch.
      if (err instanceof StoreError && err.status === 400 && options.cas !== undefined) {
        throw new StoreError('conflict', `${path} changed concurrently (check-and-set failed)`, { status: 400, cause: err });
      }
      throw err;
    }
  }

  async remove(path: string): Promise<void> {
    try {
      await this.#call(() => this.#client.delete(this.#metadata(path)));
    } catch (err) {
      if (err instanceof StoreError && err.status === 404) return;
      throw err;
    }
  }

  async list(folder: string): Promise<string[]> {
    try {
      const body = (await this.#call(() => this.#client.list(this.#metadata(folder.replace(/\/$/, ''))))) as {
        data?: { keys?: string[] };
      };
      return [...(body.data?.keys ?? [])].sort();
    } catch (err) {
      if (err instanceof StoreError && err.status === 404) return [];
      throw err;
    }
  }

  async verify(): Promise<void> {
    await this.#login();
    const where = `${this.#opts.mount}/data/${this.#opts.pathPrefix}`;
    try {
      await this.write(PROBE_PATH, { checkedAt: new Date().toISOString() });
    } catch (err) {
      if (err instanceof StoreError && err.status === 404) {
        throw new StoreError('invalid', `VAULT_KV_MOUNT: no KV v2 engine is mounted at "${this.#opts.mount}/" on ${this.#opts.addr}`, { status: 404 });
      }
      if (err instanceof StoreError && err.kind === 'denied') {
        throw new StoreError('denied', `the Vault token may not write ${where}/*: check the relay's policy`, { status: 403 });
      }
      throw err;
    }
    const probe = (await this.#call(() => this.#client.read(this.#data(PROBE_PATH)))) as { data?: { metadata?: unknown } };
    if (probe.data?.metadata === undefined) {
      throw new StoreError('invalid', `VAULT_KV_MOUNT: "${this.#opts.mount}/" is not a KV version 2 engine`);
    }
  }

  async health(): Promise<BackendHealth> {
    try {
      const body = (await this.#client.health()) as { sealed?: boolean; initialized?: boolean; standby?: boolean };
      if (body.sealed === true) return { ok: false, detail: 'vault: sealed' };
      if (body.initialized === false) return { ok: false, detail: 'vault: not initialised' };
      return { ok: true, detail: body.standby === true ? 'vault: standby' : 'vault: active' };
    } catch (err) {
      return { ok: false, detail: `vault: ${statusOf(err) ?? 'unreachable'}` };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#renewTimer !== undefined) clearTimeout(this.#renewTimer);
  }

  // --- auth

  #login(): Promise<void> {
    this.#loggingIn ??= this.#doLogin().finally(() => {
      this.#loggingIn = undefined;
    });
    return this.#loggingIn;
  }

  async #doLogin(): Promise<void> {
    let ttl: number;
    let renewable: boolean;
    try {
      if (this.#opts.roleId !== undefined && this.#opts.secretId !== undefined) {
        const res = (await this.#client.approleLogin({ role_id: this.#opts.roleId, secret_id: this.#opts.secretId })) as {
          auth: { client_token: string; lease_duration: number; renewable: boolean };
        };
        this.#client.token = res.auth.client_token;
        ttl = res.auth.lease_duration;
        renewable = res.auth.renewable;
      } else {
        const res = (await this.#client.tokenLookupSelf()) as { data: { ttl: number; renewable: boolean } };
        ttl = res.data.ttl;
        renewable = res.data.renewable;
      }
    } catch (err) {
      throw classify(err, 'Vault login failed (check VAULT_TOKEN or VAULT_ROLE_ID/VAULT_SECRET_ID)');
    }
    this.#scheduleRenewal(ttl, renewable);
  }

  #scheduleRenewal(ttlSeconds: number, renewable: boolean): void {
    if (this.#renewTimer !== undefined) clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
    if (this.#closed || ttlSeconds <= 0) return; // root-like tokens do not expire
    const hasRole = this.#opts.roleId !== undefined;
    this.#renewTimer = setTimeout(() => {
      void this.#renew(renewable, hasRole);
    }, Math.max(1, Math.floor((ttlSeconds * 1000 * 2) / 3)));
    this.#renewTimer.unref();
  }

  async #renew(renewable: boolean, hasRole: boolean): Promise<void> {
    try {
      if (renewable) {
        const res = (await this.#client.tokenRenewSelf()) as { auth: { lease_duration: number; renewable: boolean } };
        this.#scheduleRenewal(res.auth.lease_duration, res.auth.renewable);
        return;
      }
      if (hasRole) await this.#login();
    } catch (err) {
      this.#opts.logger?.warn({ status: statusOf(err) }, 'vault token renewal failed');
      if (hasRole) {
        await this.#login().catch((e: unknown) => this.#opts.logger?.error({ status: statusOf(e) }, 'vault re-login failed'));
      }
    }
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // An expired AppRole token: log in once more and retry once.
      if (statusOf(err) === 403 && this.#opts.roleId !== undefined) {
        await this.#login();
        try {
          return await fn();
        } catch (again) {
          throw classify(again, 'Vault request failed');
        }
      }
      throw classify(err, 'Vault request failed');
    }
  }
}

function classify(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const status = statusOf(err);
  if (status === undefined) return new StoreError('unavailable', `${what}: no answer from Vault`, { cause: err });
  if (status === 404) return new StoreError('not_found', `${what}: not found`, { status, cause: err });
  if (status === 403 || status === 401) return new StoreError('denied', `${what}: permission denied`, { status, cause: err });
  if (status === 429 || status >= 500) return new StoreError('unavailable', `${what}: Vault answered ${status}`, { status, cause: err });
  return new StoreError('invalid', `${what}: Vault answered ${status}`, { status, cause: err });
}
