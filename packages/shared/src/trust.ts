import { createSecureContext, getCACertificates, setDefaultCACertificates } from 'node:tls';
import type { SecureContext } from 'node:tls';

/**
 * Which CAs the relay trusts, and for what.
 *
 * The worker adds TARGET_CA_FILE to the process's default trust store, for target connections: every client
 * certificate's TLS context then shares that one store, instead of parsing its own copy of all the roots
 * (about 0.8 MB and 6 ms per context). Connections to the relay's own infrastructure (Redis over TLS, Vault
 * without VAULT_CA_FILE) must not trust a target's CA, so they use a TLS context made from the CAs the process
 * trusted at start: Node's bundled roots, plus NODE_EXTRA_CA_CERTS and the system store when Node uses them.
 */
const trustedAtStart: readonly string[] = getCACertificates('default');
let infrastructure: SecureContext | undefined;

/** A TLS context (made once) that trusts the CAs of the process at start, never TARGET_CA_FILE. */
export function infrastructureTlsContext(): SecureContext {
  infrastructure ??= createSecureContext({ ca: [...trustedAtStart] });
  return infrastructure;
}

/** Adds CAs (PEM text, one or more certificates each) to this process's default store, for target connections. */
export function trustForTargets(pems: readonly string[]): void {
  const blocks = pems.flatMap((pem) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []);
  if (blocks.length === 0) throw new Error('TARGET_CA_FILE holds no PEM certificate');
  setDefaultCACertificates([...getCACertificates('default'), ...blocks]);
}
