import { FORWARD_METHODS } from '@mtls-relay/shared/jobs';
import { cloudflareSuccess, ref, schemas } from './schemas.ts';

/**
 * The OpenAPI 3.1 document of every route of the api: the one description of the HTTP contract. Served at
 * /openapi.json, rendered at /docs, linted with Redocly (test/ops-openapi.test.ts), and every response of the
 * e2e suites that use test/support/openapi.ts is validated against it.
 */

type Obj = Record<string, unknown>;
const json = (schema: Obj): Obj => ({ 'application/json': { schema } });
const header = (description: string, schema: Obj = { type: 'string' }): Obj => ({ description, schema });
const problem = (description: string, headers: Obj = {}): Obj => ({
  description,
  headers,
  content: { 'application/problem+json': { schema: ref('Problem') } },
});
const cfFailure = (description: string, headers: Obj = {}): Obj => ({ description, headers, content: json(ref('CloudflareFailure')) });
const cfOk = (description: string, result: Obj, withInfo = false): Obj => ({ description, content: json(cloudflareSuccess(result, withInfo)) });
const requestId = { name: 'X-Request-Id', in: 'header', required: false, description: 'Taken when given (1–128 visible ASCII characters), else generated; echoed, passed to the target and logged', schema: { type: 'string', maxLength: 128 } };
const pathParam = (name: string, description: string): Obj => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
/** Account ids: a letter or digit, then up to 127 letters, digits, ".", "_" or "-", never "..": else 400 invalid_account_id. */
const ACCOUNT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$';
const accountParam = { ...pathParam('accountId', 'Account id (a letter or digit, then up to 127 letters, digits, ".", "_", "-"; no "..")'), schema: { type: 'string', pattern: ACCOUNT_ID_PATTERN } };
const cfAccountParam = { ...pathParam('account_id', 'Account id (a letter or digit, then up to 127 letters, digits, ".", "_", "-"; no "..")'), schema: { type: 'string', pattern: ACCOUNT_ID_PATTERN } };
const denied = { '401': problem('Credentials are missing or invalid'), '403': problem('The credentials may not do this') };
const cfDenied = { '401': cfFailure('Credentials are missing or invalid'), '403': cfFailure('The credentials may not act on this account') };
// Certificate store failures, mapped once (packages/shared/src/errors.ts relayErrorOf): only 503 is worth a retry.
const storeFaultText = {
  '500': 'The certificate store returned something the relay cannot use (for example a document sealed under another MASTER_KEY); not retried',
  '502': 'store_denied: the certificate store refused the relay (its Vault token or policy); not retried',
  '503': 'store_unavailable: the certificate store is unavailable; try again after Retry-After',
};
const storeFaults = {
  '500': problem(storeFaultText['500']),
  '502': problem(storeFaultText['502']),
  '503': problem(storeFaultText['503'], { 'Retry-After': header('Seconds') }),
};
const cfStoreFaults = {
  '500': cfFailure(`12500 ${storeFaultText['500']}`),
  '502': cfFailure(`12015 ${storeFaultText['502']}`),
  '503': { ...cfFailure(`12009 ${storeFaultText['503']}`), headers: { 'Retry-After': header('Seconds') } },
};
const relayHeaders = {
  'X-Request-Id': header('The request id'),
  'LP-job-id': header('The job that carried the request'),
};
/** A status the relay may answer itself (problem+json) or relay from the target (any content). */
const relayOrTarget = (description: string, extraHeaders: Obj = {}): Obj => ({
  description: `${description}; or the target's own answer with this status`,
  headers: { ...relayHeaders, 'Proxy-Status': header('RFC 9209: where the failure happened, when on the way to the target'), ...extraHeaders },
  content: { 'application/problem+json': { schema: ref('Problem') }, '*/*': { schema: {} } },
});

function forwardOperation(method: (typeof FORWARD_METHODS)[number]): Obj {
  return {
    operationId: `forward${method[0]}${method.slice(1).toLowerCase()}`,
    tags: ['forward'],
    summary: `Relay a ${method} to the target named in LP-forward-url, with the mapped client certificate`,
    parameters: [
      accountParam,
      { name: 'LP-forward-url', in: 'header', required: true, description: 'Absolute https URL of the target (http only with ALLOW_HTTP_TARGETS=true)', schema: { type: 'string', format: 'uri', pattern: '^https?://' } },
      { name: 'LP-service-name', in: 'header', required: false, description: 'The calling service: part of the mapping key', schema: { type: 'string', maxLength: 256 } },
      { name: 'LP-authorization-override', in: 'header', required: false, description: "Sent to the target as its Authorization header", schema: { type: 'string' } },
      { name: 'LP-stop-if-certificate-not-found', in: 'header', required: false, description: '`true`: 422 instead of sending without a certificate', schema: { enum: ['true', 'false'] } },
      { name: 'Idempotency-Key', in: 'header', required: false, description: 'Passed to the target; makes retries of any method safe; replays the first result for 24 h', schema: { type: 'string', maxLength: 255 } },
      { name: 'Prefer', in: 'header', required: false, description: 'RFC 7240: `respond-async` and/or `wait=N`', schema: { type: 'string' } },
      requestId,
    ],
    ...(method === 'GET' ? {} : { requestBody: { required: false, description: 'Relayed byte for byte', content: { '*/*': { schema: {} } } } }),
    responses: {
      '202': {
        description: "Accepted (Prefer: respond-async, or the wait ran out first); poll Location. Or the target's own 202",
        headers: { ...relayHeaders, Location: header('/mtls/jobs/{jobId}'), 'Retry-After': header('Seconds until a poll is useful') },
        content: { 'application/json': { schema: ref('Accepted') }, '*/*': { schema: {} } },
      },
      '400': relayOrTarget('Bad input (header, a single-value header sent twice, URL, account id)'),
      '401': relayOrTarget('Not authenticated'),
      '403': relayOrTarget('Not authorized, or the target is not allowed (SSRF guard)'),
      '409': relayOrTarget('The first request with this Idempotency-Key is still running'),
      '413': relayOrTarget('Body over the limit'),
      '422': relayOrTarget('No valid certificate while one is required, or an Idempotency-Key reused for another request (or by another caller, or with another LP-authorization-override)'),
      '431': relayOrTarget('Headers too large'),
      '502': relayOrTarget('The target could not be reached, TLS failed, or it rejected our certificate; or store_denied: the certificate store refused the relay'),
      '503': relayOrTarget('Circuit open, queue or store unavailable (store_unavailable is the only store failure worth a retry)', { 'Retry-After': header('Seconds') }),
      '504': relayOrTarget('The target was too slow, or the sync wait ran out (then with Location; the job keeps running)', { Location: header('/mtls/jobs/{jobId}') }),
      default: {
        description: "The target's response: its status, end-to-end headers and body bytes",
        headers: {
          ...relayHeaders,
          'LP-mtls': header('`used` or `none`', { enum: ['used', 'none'] }),
          'LP-mtls-certificate-id': header('The certificate presented, when one was'),
          'Idempotent-Replayed': header('`true` when this is the first result of an earlier request with the same Idempotency-Key'),
        },
        content: { '*/*': { schema: {} } },
      },
    },
  };
}

const forwardPath = Object.fromEntries(FORWARD_METHODS.map((m) => [m.toLowerCase(), forwardOperation(m)]));

const paths: Obj = {
  '/healthz': { get: { operationId: 'healthz', tags: ['operations'], summary: 'Liveness: the process runs', security: [], responses: { '200': { description: 'Alive', content: json(ref('Health')) }, '404': problem('Never: present for completeness') } } },
  '/readyz': {
    get: {
      operationId: 'readyz', tags: ['operations'], summary: 'Readiness: Redis, the certificate store and the queues answer', security: [],
      responses: { '200': { description: 'Ready', content: json(ref('Readiness')) }, '503': { description: 'Not ready (a dependency failed, or shutting down)', content: json(ref('Readiness')) }, '404': problem('Never: present for completeness') },
    },
  },
  '/metrics': {
    get: {
      operationId: 'metrics', tags: ['operations'], summary: 'Prometheus metrics (open with METRICS_PUBLIC=true); series naming an account (account_id) only for credentials that may act on it',
      responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...denied },
    },
  },
  '/openapi.json': { get: { operationId: 'openapi', tags: ['operations'], summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) }, '404': problem('Never: present for completeness') } } },
  '/docs/errors': {
    get: {
      operationId: 'errorDocs', tags: ['operations'], summary: "Every error code, one anchored entry each: the target of the Cloudflare envelope's documentation_url", security: [],
      responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } }, '404': problem('Never: present for completeness') },
    },
  },
  '/docs': { get: { operationId: 'docs', tags: ['operations'], summary: 'This document, rendered (Swagger UI)', security: [], responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } }, '404': problem('Never: present for completeness') } } },
  '/console': {
    get: {
      operationId: 'console', tags: ['operations'], summary: 'The operator console (HTML; its calls use this API with the Bearer token typed into it)', security: [],
      responses: { '200': { description: 'HTML, with a strict Content-Security-Policy', content: { 'text/html': { schema: { type: 'string' } } } }, '404': problem('Never: present for completeness') },
    },
  },
  '/mtls/whoami': {
    get: {
      operationId: 'whoami', tags: ['operations'], summary: "The caller's own credentials: the accounts they may act on, their permissions",
      responses: { '200': { description: 'The caller', content: json(ref('Principal')) }, ...denied },
    },
  },
  '/admin/queues': {
    get: {
      operationId: 'queueDashboard', tags: ['operations'], summary: 'The queue dashboard (bull-board), for administrators (all accounts, read and write)',
      responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } }, ...denied },
    },
  },
  '/mtls/account/{accountId}': forwardPath,
  '/mtls/jobs/{jobId}': {
    get: {
      operationId: 'getJob', tags: ['jobs'], summary: 'State of an async forward job',
      parameters: [pathParam('jobId', 'The job id (LP-job-id)')],
      responses: { '200': { description: 'The job', content: json(ref('JobStatus')) }, ...denied, '404': problem('Unknown, expired, or of an account these credentials may not see'), '503': problem('Queue unavailable') },
    },
  },
  '/mtls/jobs/{jobId}/response': {
    get: {
      operationId: 'getJobResponse', tags: ['jobs'], summary: "The target's response, replayed once the job is done",
      parameters: [pathParam('jobId', 'The job id')],
      responses: {
        '202': { description: 'Still pending', headers: { Location: header('/mtls/jobs/{jobId}'), 'Retry-After': header('Seconds') }, content: json(ref('Accepted')) },
        '401': denied['401'], '403': denied['403'],
        '404': relayOrTarget('Unknown or expired job'),
        default: { description: "The target's response (completed), or the relay's problem (failed)", content: { 'application/problem+json': { schema: ref('Problem') }, '*/*': { schema: {} } } },
      },
    },
  },
  '/mtls/mapping': {
    post: {
      operationId: 'checkMappings', tags: ['mappings'], summary: 'Would a forward with these parameters present a valid certificate? (Or, with match=exact: is there a mapping for exactly this tuple?)',
      description:
        '`true` (default, `match=effective`): a forward with these parameters would present a currently valid client certificate, chosen by the mapping for exactly this tuple or by the hostname. ' +
        "`match=exact`: a mapping exists for exactly this (accountId, serviceName, url), whatever its certificate's state; a hostname match does not count.",
      parameters: [
        { name: 'v', in: 'query', required: false, description: '1 (default): object keyed by the legacy key; 2: array', schema: { enum: ['1', '2'] } },
        { name: 'match', in: 'query', required: false, description: '`effective` (default): would a forward present a valid certificate; `exact`: does a mapping exist for exactly the tuple', schema: { enum: ['effective', 'exact'] } },
      ],
      requestBody: { required: true, content: json({ type: 'array', maxItems: 1000, items: ref('MappingTuple') }) },
      responses: {
        '200': { description: 'One boolean per tuple', content: json({ oneOf: [ref('MappingCheckV1'), ref('MappingCheckV2')] }) },
        '400': problem('Invalid body or query'), ...denied, '413': problem('Body over 5 MB'), ...storeFaults, '503': problem('Queue or certificate store unavailable', { 'Retry-After': header('Seconds') }), '504': problem('The check did not finish in time'),
      },
    },
  },
  '/mtls/account/{accountId}/mappings': {
    get: { operationId: 'listMappings', tags: ['mappings'], summary: 'Mappings of the account', parameters: [accountParam], responses: { '200': { description: 'Mappings', content: json({ type: 'array', items: ref('Mapping') }) }, '400': problem('Invalid account id'), ...denied, ...storeFaults } },
    post: {
      operationId: 'createMapping', tags: ['mappings'], summary: 'Map (serviceName, url) of the account to a certificate', parameters: [accountParam],
      requestBody: { required: true, content: json(ref('NewMapping')) },
      responses: {
        '201': { description: 'Created', headers: { Location: header('The mapping') }, content: json(ref('Mapping')) },
        '400': problem('Invalid body or account id'), ...denied, '404': problem('Unknown certificate'), '409': problem('A mapping for this service and URL exists'), '413': problem('Body over 64 KiB'), ...storeFaults,
      },
    },
  },
  '/mtls/account/{accountId}/mappings/{mappingId}': {
    get: { operationId: 'getMapping', tags: ['mappings'], summary: 'One mapping', parameters: [accountParam, pathParam('mappingId', 'Mapping id')], responses: { '200': { description: 'The mapping', content: json(ref('Mapping')) }, '400': problem('Invalid account id'), ...denied, '404': problem('No such mapping'), ...storeFaults } },
    delete: { operationId: 'deleteMapping', tags: ['mappings'], summary: 'Remove a mapping', parameters: [accountParam, pathParam('mappingId', 'Mapping id')], responses: { '204': { description: 'Removed' }, '400': problem('Invalid account id'), ...denied, '404': problem('No such mapping'), ...storeFaults } },
  },
  '/accounts/{account_id}/access/certificates': {
    get: {
      operationId: 'listCertificates', tags: ['certificates'], summary: 'Client certificates of the account (Cloudflare shape)',
      parameters: [cfAccountParam, { name: 'page', in: 'query', required: false, schema: { type: 'integer', minimum: 1 } }, { name: 'per_page', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000 } }],
      responses: { '200': cfOk('A page of certificates', { type: 'array', items: ref('Certificate') }, true), '400': cfFailure('Invalid paging or account id'), ...cfDenied, ...cfStoreFaults },
    },
    post: {
      operationId: 'createCertificate', tags: ['certificates'],
      summary: 'Upload a root CA (certificate alone, as Cloudflare), a client certificate (with private_key), or a PKCS#12 file (JSON base64 or multipart .p12/.pfx)',
      parameters: [cfAccountParam],
      requestBody: { required: true, content: { ...json(ref('NewCertificate')), 'multipart/form-data': { schema: ref('NewCertificateUpload') } } },
      responses: {
        '201': cfOk('Created', ref('Certificate')),
        '400': cfFailure('Bad PEM, key not matching, not a CA (root), expired, bad hostname, unreadable PKCS#12, wrong passphrase, no key, unsupported algorithm, invalid account id'),
        ...cfDenied, '409': cfFailure('Duplicate name'), '413': cfFailure('Body (or file) too large'), ...cfStoreFaults,
      },
    },
  },
  '/accounts/{account_id}/access/certificates/settings': {
    get: { operationId: 'getHostnameSettings', tags: ['certificates'], summary: 'Per-hostname settings', parameters: [cfAccountParam], responses: { '200': cfOk('Settings', { type: 'array', items: ref('HostnameSetting') }), '400': cfFailure('Invalid account id'), ...cfDenied, ...cfStoreFaults } },
    put: {
      operationId: 'putHostnameSettings', tags: ['certificates'], summary: 'Replace the per-hostname settings', parameters: [cfAccountParam],
      description:
        '`client_certificate_forwarding: true` makes every forward to that host require a client certificate (422 `certificate_required` when none is valid, instead of sending without mTLS). ' +
        '`china_network` is kept and returned for Cloudflare compatibility only: it has no effect in the relay.',
      requestBody: { required: true, content: json({ type: 'object', required: ['settings'], properties: { settings: { type: 'array', maxItems: 1000, items: ref('HostnameSetting') } } }) },
      responses: { '202': cfOk('Saved', { type: 'array', items: ref('HostnameSetting') }), '400': cfFailure('Invalid body or account id'), ...cfDenied, '413': cfFailure('Body over 1 MB'), ...cfStoreFaults },
    },
  },
  '/accounts/{account_id}/access/certificates/{certificate_id}': {
    get: { operationId: 'getCertificate', tags: ['certificates'], summary: 'One certificate', parameters: [cfAccountParam, pathParam('certificate_id', 'Certificate id')], responses: { '200': cfOk('The certificate', ref('Certificate')), '400': cfFailure('Invalid account id'), ...cfDenied, '404': cfFailure('No such certificate'), ...cfStoreFaults } },
    put: {
      operationId: 'updateCertificate', tags: ['certificates'], summary: 'Rename, re-associate hostnames, or rotate the material (PEM or PKCS#12)', parameters: [cfAccountParam, pathParam('certificate_id', 'Certificate id')],
      requestBody: { required: true, content: { ...json(ref('CertificateUpdate')), 'multipart/form-data': { schema: ref('CertificateUpdateUpload') } } },
      responses: {
        '200': cfOk('Updated', ref('Certificate')), '400': cfFailure('Invalid body, material or account id'), ...cfDenied, '404': cfFailure('No such certificate'),
        '409': cfFailure('Duplicate name, or changed concurrently'), '413': cfFailure('Body (or file) too large'), ...cfStoreFaults,
      },
    },
    delete: {
      operationId: 'deleteCertificate', tags: ['certificates'], summary: 'Remove a certificate (refused while mappings use it)', parameters: [cfAccountParam, pathParam('certificate_id', 'Certificate id')],
      responses: { '200': cfOk('Removed', { type: 'object', required: ['id'], properties: { id: { type: 'string' } } }), '400': cfFailure('Invalid account id'), ...cfDenied, '404': cfFailure('No such certificate'), '409': cfFailure('Still mapped'), ...cfStoreFaults },
    },
  },
};

let built: Readonly<Obj> | undefined;

export function openApiDocument(): Readonly<Obj> {
  built ??= Object.freeze({
    openapi: '3.1.0',
    info: {
      title: 'mtls-relay',
      version: '0.1.0',
      license: { name: 'Proprietary (UNLICENSED)', identifier: 'LicenseRef-Proprietary' },
      summary: 'Relays HTTP requests to endpoints that demand mutual TLS, presenting client certificates held in Vault',
      description:
        'Errors the relay produces are RFC 9457 problem+json with a stable `code` (Cloudflare-shaped routes under /accounts use Cloudflare\'s envelope). ' +
        'A path or method not listed here answers 404 `not_found` (or 405 `method_not_allowed` with `Allow`) the same way; under /accounts, in the envelope (codes 7000 and 7001). ' +
        'Every envelope error carries `documentation_url` (an entry of /docs/errors) and, for a bad field, `source.pointer`. See the README for the forwarding rules.',
    },
    servers: [{ url: 'http://127.0.0.1:8080', description: 'npm start' }],
    security: [{ bearer: [] }, { oauth1: [] }],
    tags: [
      { name: 'forward', description: 'Relaying requests' },
      { name: 'jobs', description: 'Async forwards' },
      { name: 'mappings', description: 'Which certificate a forward uses' },
      { name: 'certificates', description: "Client certificates, in Cloudflare's Access mTLS shape" },
      { name: 'operations', description: 'Health, metrics, documentation, the console, the queue dashboard, who is calling' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT with the admin or LPA role; the accounts claim limits the accounts' },
        oauth1: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'OAuth 1.0a (RFC 5849, HMAC-SHA1 or HMAC-SHA256) signed by a configured consumer' },
      },
    },
  });
  return built;
}
