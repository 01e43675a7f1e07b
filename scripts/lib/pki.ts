/**
 * Throw-away PKI for end-to-end tests and the dev demo target (`npm start`).
 *
 * ECDSA P-256 keys, SHA-256 signatures. Everything is generated in memory with
 * WebCrypto + @peculiar/x509; PEM encoding is done by node:crypto so the output
 * is exactly what node's `tls` / `X509Certificate` / `createPrivateKey` expect.
 */
import { KeyObject, X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import type { Extension, JsonGeneralName, Name, X509Certificate as PeculiarCertificate } from '@peculiar/x509';

// @peculiar/x509 2.x depends on tsyringe, which throws at import time unless a Reflect metadata
// polyfill (reflect-metadata & co.) is loaded first. None is installed in this repo, so provide the
// tiny subset tsyringe uses (only when nothing better is present) and load x509 afterwards: a static
// import would be evaluated before this module's body.
installReflectMetadataSubset();
const x509 = await import('@peculiar/x509');

export interface Pem {
  certPem: string;
  /** PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). */
  keyPem: string;
}

export interface Issued extends Pem {
  /** Leaf certificate followed by the issuing CA certificate, PEM concatenated. */
  chainPem: string;
  /** As node:crypto `X509Certificate.fingerprint256` gives it (`AA:BB:...`). */
  fingerprint256: string;
  /** As node:crypto `X509Certificate.subject` gives it, e.g. `CN=client-a`. */
  subject: string;
  /** As node:crypto `X509Certificate.serialNumber` gives it (upper-case hex). */
  serialNumber: string;
}

export interface CA extends Pem {
  /** The CA's common name. */
  name: string;
}

export interface ValidityOptions {
  notBefore?: Date;
  notAfter?: Date;
}

export interface IssueOptions extends ValidityOptions {
  commonName: string;
  usage: 'server' | 'client';
  dnsNames?: string[];
  ipAddresses?: string[];
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const crypto = webcrypto;
x509.cryptoProvider.set(crypto);

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Imported CA signing keys, so issuing many leaves from one CA does not re-import the key. */
const caKeys = new WeakMap<CA, Promise<{ signingKey: CryptoKey; cert: PeculiarCertificate }>>();

export async function createCA(commonName: string, opts: ValidityOptions = {}): Promise<CA> {
  assertCommonName(commonName);
  const { notBefore, notAfter } = validity(opts);
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: nameOf(commonName),
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const ca: CA = { name: commonName, certPem: certToPem(cert), keyPem: keyToPem(keys.privateKey) };
  caKeys.set(ca, Promise.resolve({ signingKey: keys.privateKey, cert }));
  return ca;
}

export async function issueCertificate(ca: CA, opts: IssueOptions): Promise<Issued> {
  assertCommonName(opts.commonName);
  if (opts.usage !== 'server' && opts.usage !== 'client') {
    throw new TypeError(`issueCertificate: usage must be 'server' or 'client', got ${String(opts.usage)}`);
  }
  const { notBefore, notAfter } = validity(opts);
  const issuer = await caSigningMaterial(ca);
  const keys = await generateKeyPair();

  const sanEntries: JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => {
      if (isIP(value) === 0) throw new TypeError(`issueCertificate: not an IP address: ${value}`);
      return { type: 'ip' as const, value };
    }),
  ];

  const extensions: Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [opts.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey, false, crypto),
  ];
  if (sanEntries.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sanEntries, false));

  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: nameOf(opts.commonName),
      // The issuer's own encoded subject, so the chain links byte for byte.
      issuer: issuer.cert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: issuer.signingKey,
      signingAlgorithm: SIGNING_ALG,
      extensions,
    },
    crypto,
  );

  const certPem = certToPem(cert);
  const parsed = new NodeX509Certificate(certPem);
  return {
    certPem,
    keyPem: keyToPem(keys.privateKey),
    chainPem: certPem + ensureTrailingNewline(ca.certPem),
    fingerprint256: parsed.fingerprint256,
    subject: parsed.subject,
    serialNumber: parsed.serialNumber,
  };
}

function caSigningMaterial(ca: CA): Promise<{ signingKey: CryptoKey; cert: PeculiarCertificate }> {
  let material = caKeys.get(ca);
  if (!material) {
    // A CA object that did not come from createCA in this process (e.g. loaded from disk/JSON).
    material = (async () => {
      const keyObject = createPrivateKey(ca.keyPem);
      const signingKey = keyObject.toCryptoKey(KEY_ALG, false, ['sign']);
      return { signingKey, cert: new x509.X509Certificate(ca.certPem) };
    })();
    material.catch(() => caKeys.delete(ca));
    caKeys.set(ca, material);
  }
  return material;
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']);
}

/**
 * Defaults: notBefore = now - 1 h, notAfter = now + 30 days. When only one bound is given and it
 * would invert the window (an expired or a not-yet-valid certificate), the other bound is moved so
 * the certificate stays well-formed (notBefore < notAfter).
 */
function validity(opts: ValidityOptions): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  for (const [k, v] of [['notBefore', opts.notBefore], ['notAfter', opts.notAfter]] as const) {
    if (v !== undefined && !(v instanceof Date && Number.isFinite(v.getTime()))) {
      throw new TypeError(`${k} must be a valid Date`);
    }
  }
  let notBefore = opts.notBefore ?? new Date(now - HOUR_MS);
  let notAfter = opts.notAfter ?? new Date(now + 30 * DAY_MS);
  if (notBefore.getTime() >= notAfter.getTime()) {
    if (!opts.notBefore) notBefore = new Date(notAfter.getTime() - DAY_MS);
    else if (!opts.notAfter) notAfter = new Date(notBefore.getTime() + 30 * DAY_MS);
    else throw new RangeError(`notBefore (${notBefore.toISOString()}) must be before notAfter (${notAfter.toISOString()})`);
  }
  return { notBefore, notAfter };
}

/** 16 random bytes, positive and without a leading zero byte (minimal DER INTEGER). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function nameOf(commonName: string): Name {
  // Typed value: bypasses x509's RFC 4514 string parsing/unescaping, so the CN is taken verbatim
  // (commas, quotes, '=', '+', backslashes, non-ASCII).
  return new x509.Name([{ CN: [{ utf8String: commonName }] }]);
}

function assertCommonName(commonName: string): void {
  if (typeof commonName !== 'string' || commonName.length === 0 || commonName.length > 64) {
    throw new TypeError('commonName must be a non-empty string of at most 64 characters');
  }
}

function certToPem(cert: PeculiarCertificate): string {
  return new NodeX509Certificate(Buffer.from(cert.rawData)).toString();
}

function keyToPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

function ensureTrailingNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

type MetadataStore = WeakMap<object, Map<PropertyKey | undefined, Map<unknown, unknown>>>;

/**
 * Minimal `Reflect.{define,get,getOwn,has,hasOwn}Metadata` + `Reflect.metadata`, enough for tsyringe's
 * `@injectable()`. Not installed when a real polyfill (reflect-metadata, core-js) is already loaded.
 */
function installReflectMetadataSubset(): void {
  const R = Reflect as unknown as Record<string, unknown>;
  if (typeof R['getMetadata'] === 'function') return;
  const store: MetadataStore = new WeakMap();
  const own = (target: object, prop: PropertyKey | undefined, create: boolean): Map<unknown, unknown> | undefined => {
    let byProp = store.get(target);
    if (!byProp) {
      if (!create) return undefined;
      byProp = new Map();
      store.set(target, byProp);
    }
    let byKey = byProp.get(prop);
    if (!byKey && create) {
      byKey = new Map();
      byProp.set(prop, byKey);
    }
    return byKey;
  };
  const find = (key: unknown, target: object, prop?: PropertyKey): Map<unknown, unknown> | undefined => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const m = own(t, prop, false);
      if (m?.has(key)) return m;
    }
    return undefined;
  };
  const define = (key: unknown, value: unknown, target: object, prop?: PropertyKey): void => {
    own(target, prop, true)?.set(key, value);
  };
  const methods: Record<string, unknown> = {
    defineMetadata: define,
    getOwnMetadata: (key: unknown, target: object, prop?: PropertyKey) => own(target, prop, false)?.get(key),
    hasOwnMetadata: (key: unknown, target: object, prop?: PropertyKey) => own(target, prop, false)?.has(key) ?? false,
    getMetadata: (key: unknown, target: object, prop?: PropertyKey) => find(key, target, prop)?.get(key),
    hasMetadata: (key: unknown, target: object, prop?: PropertyKey) => find(key, target, prop) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object, prop?: PropertyKey) => define(key, value, target, prop),
  };
  for (const [name, fn] of Object.entries(methods)) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true, enumerable: false });
  }
}
