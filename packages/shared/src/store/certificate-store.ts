import { createHash, randomUUID } from 'node:crypto';
import { StoreError } from '../errors.ts';
import { normalizeMappingUrl } from '../url.ts';
import { normalizeHostnamePattern, normalizeHostnames } from './hostnames.ts';
import { inspectCertificate } from './pem.ts';
import type {
  CertificateInfo,
  CertificateMaterial,
  DocumentBackend,
  HostnameSetting,
  MappingRecord,
} from './types.ts';

export interface NewCertificate {
  name: string;
  certificate: string;
  /** The leaf's key: a client certificate. Without it, the certificate is a root (a CA) of the account. */
  privateKey?: string;
  associatedHostnames?: readonly string[];
}

export interface CertificateUpdate {
  name?: string;
  associatedHostnames?: readonly string[];
  /** Rotation: both or neither for a client certificate; `certificate` alone for a root. */
  certificate?: string;
  privateKey?: string;
}

/** Deterministic mapping id: one mapping per (account, service, normalised url) falls out of the path. */
export function mappingId(serviceName: string, url: string): string {
  return createHash('sha256').update(`${serviceName}\n${normalizeMappingUrl(url)}`).digest('base64url').slice(0, 22);
}

const folder = (accountId: string, kind: 'certificates' | 'mappings'): string => `accounts/${accountId}/${kind}`;

/**
 * Domain operations over a DocumentBackend. Stateless: caching belongs to the caller (the worker's resolver),
 * which is told of changes through the `onChange` hook (published on Redis pub/sub by the wiring).
 */
export class CertificateStore {
  readonly backend: DocumentBackend;
  readonly #onChange: (accountId: string) => Promise<void> | void;

  constructor(backend: DocumentBackend, options: { onChange?: (accountId: string) => Promise<void> | void } = {}) {
    this.backend = backend;
    this.#onChange = options.onChange ?? (() => undefined);
  }

  // --- certificates

  async getCertificate(accountId: string, id: string): Promise<CertificateMaterial | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return null;
    const doc = await this.backend.read(`${folder(accountId, 'certificates')}/${id}`);
    return doc === null ? null : toMaterial(doc.data, doc.version);
  }

  async listCertificates(accountId: string): Promise<CertificateInfo[]> {
    const names = await this.backend.list(folder(accountId, 'certificates'));
    const docs = await Promise.all(
      names.filter((n) => !n.endsWith('/')).map((n) => this.getCertificate(accountId, n)),
    );
    return docs
      .filter((d): d is CertificateMaterial => d !== null)
      .map(withoutKey)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async createCertificate(accountId: string, input: NewCertificate): Promise<CertificateInfo> {
    const facts = inspectCertificate(input.certificate, input.privateKey);
    const associatedHostnames = normalizeHostnames(input.associatedHostnames ?? [], 'associated_hostnames');
    const existing = await this.listCertificates(accountId);
    if (existing.some((c) => c.name === input.name)) {
      throw new StoreError('conflict', `a certificate named "${input.name}" already exists in this account`);
    }
    const now = new Date().toISOString();
    const id = randomUUID();
    const data = {
      id,
      accountId,
      name: input.name,
      type: input.privateKey === undefined ? 'root' : 'client',
      certificate: facts.chainPem,
      ...(input.privateKey === undefined ? {} : { privateKey: input.privateKey }),
      fingerprint: facts.fingerprint,
      serialNumber: facts.serialNumber,
      subject: facts.subject,
      issuer: facts.issuer,
      notBefore: facts.notBefore,
      expiresOn: facts.expiresOn,
      associatedHostnames,
      createdAt: now,
      updatedAt: now,
    };
    const version = await this.backend.write(`${folder(accountId, 'certificates')}/${id}`, data, { cas: 0 });
    await this.#onChange(accountId);
    return withoutKey(toMaterial(data, version));
  }

  async updateCertificate(accountId: string, id: string, update: CertificateUpdate): Promise<CertificateInfo> {
    const current = await this.getCertificate(accountId, id);
    if (current === null) throw new StoreError('not_found', `certificate ${id} not found`);
    const isRoot = current.type === 'root';
    if (isRoot && update.privateKey !== undefined) {
      throw new StoreError('invalid', 'private_key: this is a root certificate; it takes no private key (rotate it with certificate alone)', {
        code: 'invalid_body',
        pointer: '/private_key',
      });
    }
    if (!isRoot && (update.certificate === undefined) !== (update.privateKey === undefined)) {
      throw new StoreError('invalid', 'certificate and private_key must be given together to rotate the material', {
        code: 'invalid_body',
        pointer: update.certificate === undefined ? '/certificate' : '/private_key',
      });
    }
    const hostnames =
      update.associatedHostnames === undefined ? current.associatedHostnames : normalizeHostnames(update.associatedHostnames, 'associated_hostnames');
    if (update.name !== undefined && update.name !== current.name) {
      const others = await this.listCertificates(accountId);
      if (others.some((c) => c.name === update.name && c.id !== id)) {
        throw new StoreError('conflict', `a certificate named "${update.name}" already exists in this account`);
      }
    }
    let material: Partial<CertificateMaterial> = {};
    if (update.certificate !== undefined) {
      const facts = inspectCertificate(update.certificate, isRoot ? undefined : update.privateKey);
      material = { ...facts, certificate: facts.chainPem, ...(isRoot ? {} : { privateKey: update.privateKey }) };
      delete (material as { chainPem?: string }).chainPem;
    }
    const { version: _v, ...rest } = current;
    const data = {
      ...rest,
      ...material,
      name: update.name ?? current.name,
      associatedHostnames: [...hostnames],
      updatedAt: new Date().toISOString(),
    };
    const version = await this.backend.write(`${folder(accountId, 'certificates')}/${id}`, data, { cas: current.version });
    await this.#onChange(accountId);
    return withoutKey(toMaterial(data, version));
  }

  async deleteCertificate(accountId: string, id: string): Promise<void> {
    const current = await this.getCertificate(accountId, id);
    if (current === null) throw new StoreError('not_found', `certificate ${id} not found`);
    const users = (await this.listMappings(accountId)).filter((m) => m.certificateId === id);
    if (users.length > 0) {
      throw new StoreError('conflict', `certificate ${id} is used by ${users.length} mapping(s); delete them first`);
    }
    await this.backend.remove(`${folder(accountId, 'certificates')}/${id}`);
    await this.#onChange(accountId);
  }

  // --- mappings

  async findMapping(accountId: string, serviceName: string, url: string): Promise<MappingRecord | null> {
    return this.getMapping(accountId, mappingId(serviceName, url));
  }

  async getMapping(accountId: string, id: string): Promise<MappingRecord | null> {
    if (!/^[A-Za-z0-9_-]{22}$/.test(id)) return null;
    const doc = await this.backend.read(`${folder(accountId, 'mappings')}/${id}`);
    return doc === null ? null : (doc.data as unknown as MappingRecord);
  }

  async listMappings(accountId: string): Promise<MappingRecord[]> {
    const names = await this.backend.list(folder(accountId, 'mappings'));
    const docs = await Promise.all(names.filter((n) => !n.endsWith('/')).map((n) => this.getMapping(accountId, n)));
    return docs
      .filter((d): d is MappingRecord => d !== null)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async createMapping(
    accountId: string,
    input: { serviceName: string; url: string; certificateId: string },
  ): Promise<MappingRecord> {
    const certificate = await this.getCertificate(accountId, input.certificateId);
    if (certificate === null) {
      throw new StoreError('not_found', `certificate ${input.certificateId} not found in account ${accountId}`);
    }
    if (certificate.type === 'root') {
      throw new StoreError('invalid', `certificateId: ${input.certificateId} is a root certificate (a CA, no key); map a client certificate`, {
        code: 'certificate_not_client',
        pointer: '/certificateId',
      });
    }
    const id = mappingId(input.serviceName, input.url);
    const record: MappingRecord = {
      id,
      accountId,
      serviceName: input.serviceName,
      url: normalizeMappingUrl(input.url),
      certificateId: input.certificateId,
      createdAt: new Date().toISOString(),
    };
    try {
      await this.backend.write(`${folder(accountId, 'mappings')}/${id}`, { ...record }, { cas: 0 });
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'conflict') {
        throw new StoreError('conflict', `a mapping for service "${input.serviceName}" and ${record.url} already exists`);
      }
      throw err;
    }
    await this.#onChange(accountId);
    return record;
  }

  async deleteMapping(accountId: string, id: string): Promise<void> {
    if ((await this.getMapping(accountId, id)) === null) throw new StoreError('not_found', `mapping ${id} not found`);
    await this.backend.remove(`${folder(accountId, 'mappings')}/${id}`);
    await this.#onChange(accountId);
  }

  // --- hostname settings

  async getSettings(accountId: string): Promise<HostnameSetting[]> {
    const doc = await this.backend.read(`accounts/${accountId}/settings`);
    return doc === null ? [] : ((doc.data['items'] as HostnameSetting[] | undefined) ?? []);
  }

  async putSettings(accountId: string, items: readonly HostnameSetting[]): Promise<HostnameSetting[]> {
    const copy = items.map((item, i) => {
      const hostname = normalizeHostnamePattern(item.hostname);
      if (hostname === null) {
        throw new StoreError('invalid', `settings[${i}].hostname: ${JSON.stringify(item.hostname)} is not a DNS name`, { code: 'invalid_hostname', pointer: `/settings/${i}/hostname` });
      }
      return { ...item, hostname };
    });
    const seen = new Set<string>();
    copy.forEach((item, i) => {
      if (seen.has(item.hostname)) {
        throw new StoreError('invalid', `settings[${i}].hostname: ${item.hostname} is listed twice`, { code: 'invalid_body', pointer: `/settings/${i}/hostname` });
      }
      seen.add(item.hostname);
    });
    await this.backend.write(`accounts/${accountId}/settings`, { items: copy });
    await this.#onChange(accountId);
    return copy;
  }
}

function toMaterial(data: Record<string, unknown>, version: number): CertificateMaterial {
  return { ...(data as unknown as Omit<CertificateMaterial, 'version'>), type: data['type'] === 'root' ? 'root' : 'client', version };
}

export function withoutKey(material: CertificateMaterial): CertificateInfo {
  const { privateKey: _secret, ...info } = material;
  return info;
}
