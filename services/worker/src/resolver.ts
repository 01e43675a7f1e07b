import type { CertificateMaterial, CertificateStore, HostnameSetting, MappingRecord } from '@mtls-relay/shared/store';
import { isCurrentlyValid } from '@mtls-relay/shared/store';
import { hostnameMatches } from '@mtls-relay/shared/url';
import type { TargetUrl } from '@mtls-relay/shared/url';

export interface Resolution {
  /** The certificate to present, or null to send without one. */
  readonly material: CertificateMaterial | null;
  /** The hostname settings demand a client certificate for this host. */
  readonly hostRequiresCertificate: boolean;
  /**
   * The account's root certificates whose associated hostnames match the url's host: the target's server
   * certificate is verified against these instead of the public roots. Empty: the public roots.
   */
  readonly roots: readonly CertificateMaterial[];
}

interface AccountEntry {
  readonly loadedAt: number;
  certificates?: Promise<CertificateMaterial[]>;
  settings?: Promise<HostnameSetting[]>;
  readonly mappings: Map<string, Promise<MappingRecord | null>>;
}

/**
 * Chooses the certificate for a forward (README "Which certificate a forward uses") and caches what it read
 * per account. `invalidate(accountId)` is called on every store change announced over Redis pub/sub, so a
 * rotation or a deleted mapping takes effect on the next forward; the TTL is only a safety net.
 */
export class CertificateResolver {
  readonly #store: CertificateStore;
  readonly #ttlMs: number;
  readonly #maxAccounts: number;
  readonly #accounts = new Map<string, AccountEntry>();

  constructor(store: CertificateStore, options: { ttlMs: number; maxAccounts?: number }) {
    this.#store = store;
    this.#ttlMs = options.ttlMs;
    this.#maxAccounts = options.maxAccounts ?? 10_000;
  }

  invalidate(accountId?: string): void {
    if (accountId === undefined) this.#accounts.clear();
    else this.#accounts.delete(accountId);
  }

  #entry(accountId: string): AccountEntry {
    const now = Date.now();
    const current = this.#accounts.get(accountId);
    if (current !== undefined && now - current.loadedAt < this.#ttlMs) return current;
    const fresh: AccountEntry = { loadedAt: now, mappings: new Map() };
    this.#accounts.delete(accountId);
    this.#accounts.set(accountId, fresh);
    if (this.#accounts.size > this.#maxAccounts) {
      const oldest = this.#accounts.keys().next().value;
      if (oldest !== undefined) this.#accounts.delete(oldest);
    }
    return fresh;
  }

  // A failed load must not stay cached: the next call tries again.
  #remember<T>(load: () => Promise<T>, set: (p: Promise<T> | undefined) => void): Promise<T> {
    const p = load();
    set(p);
    p.catch(() => set(undefined));
    return p;
  }

  async #certificates(accountId: string): Promise<CertificateMaterial[]> {
    const entry = this.#entry(accountId);
    if (entry.certificates !== undefined) return entry.certificates;
    return this.#remember(
      async () => {
        const infos = await this.#store.listCertificates(accountId);
        const all = await Promise.all(infos.map((i) => this.#store.getCertificate(accountId, i.id)));
        return all.filter((m): m is CertificateMaterial => m !== null);
      },
      (p) => {
        entry.certificates = p;
      },
    );
  }

  async #settings(accountId: string): Promise<HostnameSetting[]> {
    const entry = this.#entry(accountId);
    if (entry.settings !== undefined) return entry.settings;
    return this.#remember(() => this.#store.getSettings(accountId), (p) => {
      entry.settings = p;
    });
  }

  async #mapping(accountId: string, serviceName: string, url: string): Promise<MappingRecord | null> {
    const entry = this.#entry(accountId);
    const key = `${serviceName}\n${url}`;
    const cached = entry.mappings.get(key);
    if (cached !== undefined) return cached;
    if (entry.mappings.size > 10_000) entry.mappings.clear();
    return this.#remember(() => this.#store.findMapping(accountId, serviceName, url), (p) => {
      if (p === undefined) entry.mappings.delete(key);
      else entry.mappings.set(key, p);
    });
  }

  async resolve(accountId: string, serviceName: string, url: TargetUrl, now: number = Date.now()): Promise<Resolution> {
    const [mapping, certificates, settings] = await Promise.all([
      this.#mapping(accountId, serviceName, url.normalized),
      this.#certificates(accountId),
      this.#settings(accountId),
    ]);
    const hostRequiresCertificate = settings.some(
      (s) => s.clientCertificateForwarding && hostnameMatches(s.hostname, url.hostname),
    );
    // Roots are taken whatever their dates: one that has expired must fail the handshake (the TLS stack says
    // so), never quietly hand the host back to the public roots it was meant to replace.
    const roots = certificates.filter((c) => c.type === 'root' && c.associatedHostnames.some((h) => hostnameMatches(h, url.hostname)));
    const valid = certificates.filter((c) => c.type !== 'root' && isCurrentlyValid(c, now));
    if (mapping !== null) {
      const mapped = valid.find((c) => c.id === mapping.certificateId);
      if (mapped !== undefined) return { material: mapped, hostRequiresCertificate, roots };
    }
    // Exact host names before wildcards; among equals, the one that stays valid longest.
    const byHost = valid
      .map((c) => ({ c, exact: c.associatedHostnames.some((h) => !h.startsWith('*.') && hostnameMatches(h, url.hostname)) }))
      .filter(({ c, exact }) => exact || c.associatedHostnames.some((h) => hostnameMatches(h, url.hostname)))
      .sort((a, b) => Number(b.exact) - Number(a.exact) || b.c.expiresOn.localeCompare(a.c.expiresOn));
    const chosen = byHost[0]?.c;
    if (chosen !== undefined) return { material: chosen, hostRequiresCertificate, roots };
    return { material: null, hostRequiresCertificate, roots };
  }

  /** Is there a mapping for exactly (accountId, serviceName, url), whatever its certificate's state? */
  async hasMapping(accountId: string, serviceName: string, url: TargetUrl): Promise<boolean> {
    return (await this.#mapping(accountId, serviceName, url.normalized)) !== null;
  }
}
