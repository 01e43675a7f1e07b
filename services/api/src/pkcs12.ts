/**
 * PKCS#12 (.p12 / .pfx) to the PEM the store keeps: the leaf (the certificate of the private key) followed by
 * the CA certificates that issued it, and the key as PKCS#8. Reading is node-forge's (a maintained PKCS#12
 * implementation: PBES2 with AES or 3DES, the legacy PKCS#12 PBE algorithms, MACs with SHA-1 or SHA-2); Node's
 * crypto cannot read PKCS#12 into PEM (tls.createSecureContext takes `pfx` but never gives the key back).
 * The passphrase and the key stay in memory: never logged, never in an error message.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { RelayError } from '@mtls-relay/shared/errors';

export interface PemMaterial {
  certificate: string;
  privateKey: string;
}

const derOf = (asn1: forge.asn1.Asn1): Buffer => Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');

/**
 * The iteration count of each key derivation comes from the file, and node-forge derives in JavaScript on the
 * api's event loop (about 1 s per 100,000 PBKDF2-SHA256 iterations here): a file asking for 2^31 would stall the
 * process for hours. openssl writes 2,048 by default and Java 10,000; more than MAX_ITERATIONS is refused before
 * any work, by wrapping forge's three derivation functions (looked up on these objects at each call).
 */
export const MAX_ITERATIONS = 100_000;

class TooManyIterations extends Error {}

type Derive = (...args: unknown[]) => unknown;
function capIterations(owner: Record<string, unknown>, name: string, countIndex: number): void {
  const original = owner[name] as Derive;
  owner[name] = (...args: unknown[]): unknown => {
    if (!(Number(args[countIndex]) <= MAX_ITERATIONS)) throw new TooManyIterations(String(args[countIndex]));
    return original(...args);
  };
}
capIterations(forge.pkcs5 as unknown as Record<string, unknown>, 'pbkdf2', 2);
capIterations(forge.pkcs12 as unknown as Record<string, unknown>, 'generateKey', 3);
capIterations((forge.pki as unknown as { pbe: Record<string, unknown> }).pbe, 'generatePkcs12Key', 3);

/**
 * node-forge reports its failures as Error messages only; this is the one place that reads them, and every
 * branch is exercised by files openssl makes in the tests (wrong passphrase, unsupported algorithms).
 */
function classify(err: unknown, pointer: string): RelayError {
  if (err instanceof TooManyIterations) {
    return new RelayError(
      'pkcs12_unsupported_algorithm',
      `pkcs12: the file asks for ${err.message} key-derivation iterations; at most ${MAX_ITERATIONS} are accepted (openssl writes 2048)`,
      { pointer },
    );
  }
  const message = err instanceof Error ? err.message : '';
  if (/invalid password|wrong password|failed to decrypt/i.test(message)) {
    return new RelayError('pkcs12_wrong_passphrase', 'passphrase: the PKCS#12 file does not open with this passphrase', { pointer: '/passphrase' });
  }
  if (/unsupported|cannot read encrypted/i.test(message)) {
    return new RelayError(
      'pkcs12_unsupported_algorithm',
      'pkcs12: the file is protected with an algorithm the relay cannot decrypt; export it again with `openssl pkcs12 -export` defaults (AES-256-CBC, PBKDF2, SHA-256 MAC)',
      { pointer },
    );
  }
  return new RelayError('invalid_pkcs12', 'pkcs12: the data is not a readable PKCS#12 file', { pointer });
}

/** `pointer` names the field the file came in (`/pkcs12`, or the multipart field). */
export function pemFromPkcs12(der: Buffer, passphrase: string, pointer = '/pkcs12'): PemMaterial {
  if (der.length === 0) throw new RelayError('invalid_pkcs12', 'pkcs12: the file is empty', { pointer });
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(der.toString('binary'));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, passphrase);
  } catch (err) {
    throw classify(err, pointer);
  }
  const bagsOf = (type: string): forge.pkcs12.Bag[] => p12.getBags({ bagType: type })[type] ?? [];
  const keyBags = [...bagsOf(forge.pki.oids['pkcs8ShroudedKeyBag'] as string), ...bagsOf(forge.pki.oids['keyBag'] as string)];
  const keys: KeyObject[] = [];
  for (const bag of keyBags) {
    // forge parses RSA keys itself; for others (EC, Ed25519) it leaves the PrivateKeyInfo as ASN.1.
    const info = bag.key === undefined || bag.key === null ? bag.asn1 : forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key));
    try {
      keys.push(createPrivateKey({ key: derOf(info), format: 'der', type: 'pkcs8' }));
    } catch {
      throw new RelayError('pkcs12_no_key', 'pkcs12: the private key in the file cannot be read', { pointer });
    }
  }
  if (keys.length === 0) throw new RelayError('pkcs12_no_key', 'pkcs12: the file holds no private key (export it with its key)', { pointer });
  const certificates: X509Certificate[] = [];
  for (const bag of bagsOf(forge.pki.oids['certBag'] as string)) {
    const asn1 = bag.cert === undefined || bag.cert === null ? bag.asn1 : forge.pki.certificateToAsn1(bag.cert);
    try {
      certificates.push(new X509Certificate(derOf(asn1)));
    } catch {
      throw new RelayError('invalid_pkcs12', 'pkcs12: a certificate in the file is not a valid X.509 certificate', { pointer });
    }
  }
  for (const key of keys) {
    const leaf = certificates.find((c) => c.checkPrivateKey(key));
    if (leaf === undefined) continue;
    // Leaf first, then each issuer found in the file; unrelated certificates are left out.
    const chain = [leaf];
    for (;;) {
      const last = chain[chain.length - 1] as X509Certificate;
      const issuer = certificates.find((c) => !chain.includes(c) && last.checkIssued(c) && last.verify(c.publicKey));
      if (issuer === undefined) break;
      chain.push(issuer);
    }
    return {
      certificate: chain.map((c) => c.toString().trim()).join('\n') + '\n',
      privateKey: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
  }
  throw new RelayError('pkcs12_no_key', 'pkcs12: the file holds no certificate for its private key', { pointer });
}
