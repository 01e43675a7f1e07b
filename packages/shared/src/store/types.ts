/**
 * The certificate store: certificates (chain + private key), mappings and hostname settings.
 * Two backends keep the same documents: Vault KV v2 (production) and Redis with every document sealed
 * under MASTER_KEY (the embedded default). Paths are relative to the backend's root, e.g.
 * `accounts/123/certificates/<id>`.
 */

export interface StoredDocument {
  readonly data: Record<string, unknown>;
  /** Increases by one on every write; the first write is version 1. */
  readonly version: number;
}

export interface BackendHealth {
  readonly ok: boolean;
  readonly detail: string;
}

/** A small versioned document store: exactly what both backends can do the same way. */
export interface DocumentBackend {
  readonly kind: 'vault' | 'embedded';
  /** The document, or null when absent (or deleted). */
  read(path: string): Promise<StoredDocument | null>;
  /**
   * Writes a new version and returns its number. With `cas`, the write only happens when the current
   * version is `cas` (0: only when absent); otherwise it throws StoreError kind 'conflict'.
   */
  write(path: string, data: Record<string, unknown>, options?: { cas?: number }): Promise<number>;
  /** Removes the document and all its versions; absent is not an error. */
  remove(path: string): Promise<void>;
  /** Names directly below `folder`; sub-folders end with `/`. Empty when the folder does not exist. */
  list(folder: string): Promise<string[]>;
  /**
   * Verifies at start that the store is usable as configured (mount exists and is KV v2, credentials
   * work). Throws StoreError with a message that says what to fix; never retried in a loop.
   */
  verify(): Promise<void>;
  health(): Promise<BackendHealth>;
  close(): Promise<void>;
}

/**
 * `client`: an identity the relay presents to targets (certificate chain and private key).
 * `root`: a CA of the account (no key), trusted for the server certificates of its associated hostnames
 * instead of the public roots.
 */
export type CertificateType = 'client' | 'root';

/** Certificate metadata: everything but the private key. */
export interface CertificateInfo {
  readonly id: string;
  readonly accountId: string;
  readonly name: string;
  /** Absent in documents written before roots existed: those are client certificates. */
  readonly type?: CertificateType;
  /** PEM chain, leaf first (public material). */
  readonly certificate: string;
  /** SHA-256 fingerprint of the leaf, lower-case hex without separators. */
  readonly fingerprint: string;
  readonly serialNumber: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly expiresOn: string;
  readonly associatedHostnames: readonly string[];
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Store version of the document; changes when the material is rotated. */
  readonly version: number;
}

export interface CertificateMaterial extends CertificateInfo {
  /** PEM private key of the leaf (client certificates only). Never returned by the API, never logged. */
  readonly privateKey?: string;
}

export interface MappingRecord {
  readonly id: string;
  readonly accountId: string;
  readonly serviceName: string;
  /** Normalised URL (scheme and host lower-case, default port dropped; path and query as given). */
  readonly url: string;
  readonly certificateId: string;
  readonly createdAt: string;
}

export interface HostnameSetting {
  readonly hostname: string;
  readonly chinaNetwork: boolean;
  readonly clientCertificateForwarding: boolean;
}
