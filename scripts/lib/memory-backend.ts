/**
 * A certificate-store backend kept in this process's memory, for unit tests that need a real CertificateStore
 * without Redis or Vault. It keeps the same contract as the embedded and Vault backends (versions from 1,
 * check-and-set, folder listing, remove), and test/store-contract.test.ts holds it to that contract.
 */
import { StoreError } from '../../packages/shared/src/errors.ts';
import type { BackendHealth, DocumentBackend, StoredDocument } from '../../packages/shared/src/store/index.ts';

export class MemoryBackend implements DocumentBackend {
  readonly kind = 'embedded' as const;
  readonly #docs = new Map<string, StoredDocument>();

  async read(path: string): Promise<StoredDocument | null> {
    const doc = this.#docs.get(path);
    // Copies, as a real backend hands out a fresh object on every read.
    return doc === undefined ? null : { data: structuredClone(doc.data), version: doc.version };
  }

  async write(path: string, data: Record<string, unknown>, options: { cas?: number } = {}): Promise<number> {
    const current = this.#docs.get(path)?.version ?? 0;
    if (options.cas !== undefined && options.cas !== current) throw new StoreError('conflict', `${path} changed concurrently (check-and-set failed)`);
    const version = current + 1;
    this.#docs.set(path, { data: structuredClone(data), version });
    return version;
  }

  async remove(path: string): Promise<void> {
    this.#docs.delete(path);
  }

  async list(folder: string): Promise<string[]> {
    const prefix = `${folder.replace(/\/$/, '')}/`;
    const names = new Set<string>();
    for (const path of this.#docs.keys()) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const slash = rest.indexOf('/');
      names.add(slash < 0 ? rest : rest.slice(0, slash + 1));
    }
    return [...names].sort();
  }

  async verify(): Promise<void> {}

  async health(): Promise<BackendHealth> {
    return { ok: true, detail: 'memory' };
  }

  async close(): Promise<void> {}
}
