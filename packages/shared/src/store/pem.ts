import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { StoreError } from '../errors.ts';

export interface PemFacts {
  readonly fingerprint: string;
  readonly serialNumber: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly expiresOn: string;
  /** The chain normalised: each certificate re-encoded, leaf first, joined by newlines. */
  readonly chainPem: string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Checks a client certificate and its key the way a TLS handshake would need them: the chain parses, the key
 * parses and belongs to the leaf, and the leaf is valid now. Throws StoreError kind 'invalid' naming the problem.
 */
export function inspectCertificate(chainPem: string, keyPem: string, now: Date = new Date()): PemFacts {
  const blocks = chainPem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new StoreError('invalid', 'certificate: no PEM certificate found', { code: 'invalid_certificate' });
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch {
    throw new StoreError('invalid', 'certificate: the PEM data is not a valid X.509 certificate', { code: 'invalid_certificate' });
  }
  const leaf = chain[0] as X509Certificate;
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new StoreError('invalid', 'private_key: not a valid PEM private key (encrypted keys are not supported)', { code: 'invalid_private_key' });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new StoreError('invalid', 'private_key: the key does not belong to the first (leaf) certificate', { code: 'invalid_private_key' });
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now.getTime() > notAfter.getTime()) {
    throw new StoreError('invalid', `certificate: the leaf expired on ${notAfter.toISOString()}`, { code: 'certificate_not_current' });
  }
  if (now.getTime() < notBefore.getTime()) {
    throw new StoreError('invalid', `certificate: the leaf is not valid before ${notBefore.toISOString()}`, { code: 'certificate_not_current' });
  }
  return {
    fingerprint: leaf.fingerprint256.replaceAll(':', '').toLowerCase(),
    serialNumber: leaf.serialNumber,
    subject: leaf.subject,
    issuer: leaf.issuer,
    notBefore: notBefore.toISOString(),
    expiresOn: notAfter.toISOString(),
    chainPem: chain.map((c) => c.toString().trim()).join('\n') + '\n',
  };
}

/** True while `now` is inside [notBefore, expiresOn]. */
export function isCurrentlyValid(info: { notBefore: string; expiresOn: string }, now: number = Date.now()): boolean {
  return now >= Date.parse(info.notBefore) && now <= Date.parse(info.expiresOn);
}
