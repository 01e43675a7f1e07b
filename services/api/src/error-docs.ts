import { ERROR_CATALOGUE } from '@mtls-relay/shared/errors';
import type { ErrorCode } from '@mtls-relay/shared/errors';
import { CF_NO_ROUTE, cloudflareCode } from './cloudflare.ts';

/** What the caller can do about each error, beyond its title; the page at /docs/errors shows both. */
const ADVICE: Partial<Record<ErrorCode, string>> = {
  invalid_body: 'A field is missing or has the wrong type; the message names it and `source.pointer` points at it.',
  invalid_certificate: '`certificate` must be PEM. With `private_key` it is a client chain, leaf first; without, a root: every certificate in it must be a CA.',
  invalid_private_key: '`private_key` must be an unencrypted PEM key (PKCS#8, PKCS#1 or SEC1) of the first certificate.',
  certificate_not_current: 'The leaf (or the root) has expired or is not valid yet.',
  invalid_hostname: 'Hostnames are DNS names; `*.` only as the whole first label; no scheme, port, path or IP address.',
  invalid_pkcs12: '`pkcs12` (base64) or the uploaded file is not a PKCS#12 (.p12/.pfx) file.',
  pkcs12_wrong_passphrase: 'The MAC or the encrypted parts of the PKCS#12 file do not open with `passphrase`.',
  pkcs12_no_key: 'A PKCS#12 upload must hold the private key and its certificate (export with the key, e.g. `openssl pkcs12 -export -inkey …`).',
  pkcs12_unsupported_algorithm: 'The file is encrypted with an algorithm the relay cannot read (supported: PBES2 with AES-CBC or 3DES and HMAC-SHA1/SHA-2 PRFs, PKCS#12 PBE with 3DES or RC2; MAC SHA-1 or SHA-2; at most 100,000 key-derivation iterations). Re-export with `openssl pkcs12 -export` defaults.',
  certificate_not_client: 'Root certificates (uploaded without a private key) verify targets; mappings need a client certificate.',
  not_found: 'No such certificate (or mapping) in this account.',
  conflict: 'A certificate with this name exists, the certificate is still mapped, or it changed concurrently.',
  method_not_allowed: 'The `Allow` header lists the methods of this route.',
  unauthenticated: 'Send `Authorization: Bearer <token>` or an OAuth 1.0a signature (see docs/auth.md).',
  forbidden: 'The credentials may not act on this account, or lack the permission for this method.',
  store_unavailable: 'Vault or Redis did not answer; retry after `Retry-After`.',
};

const escape = (text: string): string => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
const code = (text: string): string => escape(text).replace(/`([^`]+)`/g, '<code>$1</code>');

let page: string | undefined;

/**
 * The error documentation that `errors[].documentation_url` (`/docs/errors#<code>`) points into: one entry per
 * catalogue code, anchored by it, with its HTTP status, the Cloudflare envelope's integer and the problem+json type.
 */
export function errorDocsPage(): string {
  page ??= (() => {
    const rows = (Object.keys(ERROR_CATALOGUE) as ErrorCode[]).map((c) => {
      const spec = ERROR_CATALOGUE[c];
      const advice = ADVICE[c];
      return `<section id="${c}"><h2><code>${c}</code></h2><p>${escape(spec.title)}.${advice === undefined ? '' : ` ${code(advice)}`}</p>` +
        `<p>HTTP ${spec.status}; Cloudflare envelope code ${cloudflareCode(c)}; problem+json type <code>urn:mtls-relay:problem:${c}</code>.</p></section>`;
    });
    rows.push(`<section id="no_route"><h2><code>no_route</code></h2><p>No route under /accounts has this path.</p><p>HTTP 404; Cloudflare envelope code ${CF_NO_ROUTE}.</p></section>`);
    return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>mtls-relay errors</title></head>
<body><h1>mtls-relay errors</h1>
<p>Errors the relay produces carry a stable code: <code>code</code> in problem+json, an integer in the Cloudflare envelope of the /accounts routes, whose <code>documentation_url</code> points at the entry below.</p>
${rows.join('\n')}
</body>
</html>
`;
  })();
  return page;
}
