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

const invalid = (message: string, code: 'invalid_certificate' | 'invalid_private_key' | 'certificate_not_current', pointer: string): StoreError =>
  new StoreError('invalid', message, { code, pointer });

/**
 * Checks a certificate the way a TLS handshake would need it. With a key (a client certificate): the chain
 * parses, the key parses and belongs to the leaf, and the leaf is valid now. Without one (a root): every
 * certificate given is a CA (basicConstraints CA:TRUE) and the first is valid now. Throws StoreError kind
 * 'invalid' naming the problem, with a JSON pointer to the field.
 */
export function inspectCertificate(chainPem: string, keyPem: string | undefined, now: Date = new Date()): PemFacts {
  const blocks = chainPem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw invalid('certificate: no PEM certificate found', 'invalid_certificate', '/certificate');
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch {
    throw invalid('certificate: the PEM data is not a valid X.509 certificate', 'invalid_certificate', '/certificate');
  }
  const leaf = chain[0] as X509Certificate;
  if (keyPem === undefined) {
    if (!chain.every((c) => c.ca)) {
      throw invalid(
        'certificate: without private_key this is a root certificate, and every certificate given must be a CA (basicConstraints CA:TRUE); to upload a client certificate, send its private_key too',
        'invalid_certificate',
        '/certificate',
      );
    }
  } else {
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch {
      throw invalid('private_key: not a valid PEM private key (encrypted keys are not supported)', 'invalid_private_key', '/private_key');
    }
    if (!leaf.checkPrivateKey(key)) {
      throw invalid('private_key: the key does not belong to the first (leaf) certificate', 'invalid_private_key', '/private_key');
    }
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  const what = keyPem === undefined ? 'the root' : 'the leaf';
  if (now.getTime() > notAfter.getTime()) {
    throw invalid(`certificate: ${what} expired on ${notAfter.toISOString()}`, 'certificate_not_current', '/certificate');
  }
  if (now.getTime() < notBefore.getTime()) {
    throw invalid(`certificate: ${what} is not valid before ${notBefore.toISOString()}`, 'certificate_not_current', '/certificate');
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
