import { ERROR_CATALOGUE } from '@mtls-relay/shared/errors';

/**
 * Component schemas of the OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 uses). The wire shapes the
 * routes produce; the e2e suite validates real responses against them (test/support/openapi.ts).
 */

const ref = (name: string): { $ref: string } => ({ $ref: `#/components/schemas/${name}` });
const dateTime = { type: 'string', format: 'date-time' } as const;

export const schemas: Record<string, Record<string, unknown>> = {
  Problem: {
    type: 'object',
    description: 'RFC 9457 problem details. `code` is stable: branch on it, never on the text.',
    required: ['type', 'title', 'status', 'code'],
    properties: {
      type: { type: 'string', description: '`urn:mtls-relay:problem:<code>`' },
      title: { type: 'string' },
      status: { type: 'integer', minimum: 400, maximum: 599 },
      detail: { type: 'string' },
      code: { type: 'string', enum: Object.keys(ERROR_CATALOGUE) },
      jobId: { type: 'string', description: 'The job of the request, when one was created' },
    },
    additionalProperties: true,
  },
  Health: {
    type: 'object',
    required: ['status'],
    properties: { status: { const: 'ok' } },
  },
  Readiness: {
    type: 'object',
    required: ['status', 'shuttingDown', 'checks'],
    properties: {
      status: { enum: ['ready', 'not ready'] },
      shuttingDown: { type: 'boolean' },
      checks: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'ok'],
          properties: { name: { enum: ['redis', 'store', 'queues', 'workers'] }, ok: { type: 'boolean' }, detail: { type: 'string' } },
        },
      },
    },
  },
  Accepted: {
    type: 'object',
    description: 'A job that is queued or running; poll its Location.',
    required: ['jobId', 'state'],
    properties: { jobId: { type: 'string', format: 'uuid' }, state: { enum: ['queued', 'active'] } },
  },
  MtlsUse: {
    type: 'object',
    required: ['used'],
    properties: { used: { type: 'boolean' }, certificateId: { type: 'string' } },
  },
  JobStatus: {
    type: 'object',
    required: ['id', 'state', 'attempts', 'createdAt', 'finishedAt', 'mtls', 'response', 'error'],
    properties: {
      id: { type: 'string', format: 'uuid' },
      state: { enum: ['queued', 'active', 'completed', 'failed'] },
      attempts: { type: 'integer', minimum: 0 },
      createdAt: dateTime,
      finishedAt: { oneOf: [dateTime, { type: 'null' }] },
      mtls: { oneOf: [ref('MtlsUse'), { type: 'null' }] },
      response: {
        oneOf: [
          {
            type: 'object',
            required: ['status', 'headers'],
            properties: {
              status: { type: 'integer' },
              headers: { type: 'object', additionalProperties: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } },
            },
          },
          { type: 'null' },
        ],
      },
      error: {
        oneOf: [
          {
            type: 'object',
            required: ['code', 'detail'],
            properties: { code: { type: 'string', enum: Object.keys(ERROR_CATALOGUE) }, detail: { type: 'string' }, retryAfter: { type: 'number' } },
          },
          { type: 'null' },
        ],
      },
    },
  },
  Principal: {
    type: 'object',
    description: 'Who is calling, as the relay authenticated it. Tells only about the caller itself.',
    required: ['id', 'kind', 'accounts', 'permissions', 'administrator'],
    properties: {
      id: { type: 'string', description: 'The JWT subject or the OAuth consumer key' },
      kind: { enum: ['jwt', 'oauth1'] },
      accounts: { oneOf: [{ const: '*' }, { type: 'array', items: { type: 'string' } }], description: '`*`: every account; else the accounts these credentials may act on' },
      permissions: { type: 'array', items: { enum: ['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'] } },
      administrator: { type: 'boolean', description: 'Every account, both permissions: may open /admin/queues' },
    },
    additionalProperties: false,
  },
  MappingTuple: {
    type: 'object',
    required: ['accountId', 'serviceName', 'url'],
    properties: { accountId: { type: 'string' }, serviceName: { type: 'string', maxLength: 256 }, url: { type: 'string', maxLength: 4096 } },
  },
  MappingCheckV1: {
    type: 'object',
    description: "Keys are exactly `CertificateMappingParamters{serviceName='…', accountId='…', url='…'}` (the misspelling is the wire format).",
    propertyNames: { pattern: "^CertificateMappingParamters\\{serviceName='.*', accountId='.*', url='.*'\\}$" },
    additionalProperties: { type: 'boolean' },
  },
  MappingCheckV2: {
    type: 'array',
    items: {
      type: 'object',
      required: ['accountId', 'serviceName', 'url', 'doExist'],
      properties: { accountId: { type: 'string' }, serviceName: { type: 'string' }, url: { type: 'string' }, doExist: { type: 'boolean' } },
    },
  },
  NewMapping: {
    type: 'object',
    required: ['serviceName', 'url', 'certificateId'],
    properties: { serviceName: { type: 'string', maxLength: 256 }, url: { type: 'string', format: 'uri', pattern: '^https?://', maxLength: 4096 }, certificateId: { type: 'string', maxLength: 64 } },
  },
  Mapping: {
    type: 'object',
    required: ['id', 'accountId', 'serviceName', 'url', 'certificateId', 'createdAt'],
    properties: {
      id: { type: 'string' },
      accountId: { type: 'string' },
      serviceName: { type: 'string' },
      url: { type: 'string', description: 'Normalised: scheme and host lower-case, default port dropped' },
      certificateId: { type: 'string' },
      createdAt: dateTime,
    },
  },
  CloudflareError: {
    type: 'object',
    required: ['code', 'message', 'documentation_url'],
    properties: {
      code: { type: 'integer', minimum: 1000, description: 'Stable integer code (table at /docs/errors and in the README)' },
      message: { type: 'string', description: 'What is wrong, naming the field; never quotes a key or a passphrase' },
      documentation_url: { type: 'string', pattern: '^/docs/errors#[a-z0-9_]+$', description: "The entry for this error on the relay's error page (resolve against the relay's base URL)" },
      source: {
        type: 'object',
        description: 'The request field at fault, when one is',
        required: ['pointer'],
        properties: { pointer: { type: 'string', description: 'RFC 6901 JSON pointer into the request body, e.g. `/private_key` or `/associated_hostnames/1`' } },
      },
    },
  },
  CloudflareFailure: {
    type: 'object',
    description: "Cloudflare's envelope for a failure.",
    required: ['success', 'errors', 'messages', 'result'],
    properties: {
      success: { const: false },
      errors: { type: 'array', minItems: 1, items: ref('CloudflareError') },
      messages: { type: 'array' },
      result: { type: 'null' },
    },
  },
  ResultInfo: {
    type: 'object',
    required: ['page', 'per_page', 'count', 'total_count', 'total_pages'],
    properties: {
      page: { type: 'integer' },
      per_page: { type: 'integer' },
      count: { type: 'integer' },
      total_count: { type: 'integer' },
      total_pages: { type: 'integer' },
    },
  },
  Certificate: {
    type: 'object',
    description:
      'A client certificate the relay presents (`type: client`), or a root CA of the account (`type: root`) that verifies the server certificates of its associated hostnames instead of the public roots. The private key is write-only: never returned.',
    required: ['id', 'name', 'type', 'fingerprint', 'expires_on', 'associated_hostnames', 'created_at', 'updated_at'],
    properties: {
      id: { type: 'string' },
      name: { type: 'string' },
      type: { enum: ['client', 'root'], description: '`root` when it was uploaded without a private key' },
      fingerprint: { type: 'string', description: 'SHA-256 of the leaf, lower-case hex' },
      expires_on: dateTime,
      associated_hostnames: { type: 'array', items: { type: 'string' }, description: 'client: the hosts it is presented to (without a mapping); root: the hosts whose server certificates it verifies' },
      created_at: dateTime,
      updated_at: dateTime,
      serial_number: { type: 'string' },
      issuer: { type: 'string' },
      not_before: dateTime,
    },
    propertyNames: { not: { enum: ['private_key', 'privateKey'] } },
  },
  NewCertificate: {
    type: 'object',
    description:
      'Either `certificate` (PEM; with `private_key` a client certificate, without one a root CA, as Cloudflare creates them), or `pkcs12` (base64 of a .p12/.pfx file holding the key and its certificate) with `passphrase`.',
    required: ['name'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 255 },
      certificate: { type: 'string', description: 'PEM. Client: the chain, leaf first. Root: one or more CA certificates (basicConstraints CA:TRUE)' },
      private_key: { type: 'string', writeOnly: true, description: "The leaf's unencrypted PEM private key; makes the certificate a client identity" },
      pkcs12: { type: 'string', writeOnly: true, contentEncoding: 'base64', description: 'A PKCS#12 file (base64) with the private key and its certificate (and CAs); instead of certificate and private_key' },
      passphrase: { type: 'string', writeOnly: true, description: 'The PKCS#12 passphrase (default empty)' },
      associated_hostnames: { type: 'array', maxItems: 100, items: { type: 'string' } },
    },
  },
  NewCertificateUpload: {
    type: 'object',
    description: 'A .p12/.pfx file upload: the file in the field `pkcs12` (or `file`), at most 1 MB.',
    required: ['name'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 255 },
      pkcs12: { type: 'string', format: 'binary', writeOnly: true, description: 'The .p12/.pfx file (or in the field `file`)' },
      passphrase: { type: 'string', writeOnly: true },
      associated_hostnames: { type: 'array', maxItems: 100, items: { type: 'string' }, description: 'Repeat the field for each name' },
    },
  },
  CertificateUpdate: {
    type: 'object',
    required: ['associated_hostnames'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 255 },
      associated_hostnames: { type: 'array', maxItems: 100, items: { type: 'string' } },
      certificate: { type: 'string', description: 'Rotates the material: with private_key for a client certificate, alone for a root' },
      private_key: { type: 'string', writeOnly: true },
      pkcs12: { type: 'string', writeOnly: true, contentEncoding: 'base64', description: 'Rotates a client certificate from a PKCS#12 file (base64)' },
      passphrase: { type: 'string', writeOnly: true },
    },
  },
  CertificateUpdateUpload: {
    type: 'object',
    description: 'Rotation from a .p12/.pfx file; without associated_hostnames the current ones are kept.',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 255 },
      pkcs12: { type: 'string', format: 'binary', writeOnly: true },
      passphrase: { type: 'string', writeOnly: true },
      associated_hostnames: { type: 'array', maxItems: 100, items: { type: 'string' } },
    },
  },
  HostnameSetting: {
    type: 'object',
    required: ['hostname', 'china_network', 'client_certificate_forwarding'],
    properties: {
      hostname: { type: 'string', description: 'A DNS name, or `*.` and a name (one label)' },
      china_network: { type: 'boolean', description: 'Stored and returned for Cloudflare compatibility; it has no effect in the relay' },
      client_certificate_forwarding: {
        type: 'boolean',
        description: '`true`: forwards to this host must present a client certificate; without a valid one they fail with 422 `certificate_required` instead of going out without mTLS',
      },
    },
  },
};

/** Cloudflare's envelope for a success whose `result` is `result`. */
export function cloudflareSuccess(result: Record<string, unknown>, withInfo = false): Record<string, unknown> {
  return {
    type: 'object',
    required: ['success', 'errors', 'messages', 'result'],
    properties: {
      success: { const: true },
      errors: { type: 'array', maxItems: 0 },
      messages: { type: 'array' },
      result,
      ...(withInfo ? { result_info: ref('ResultInfo') } : {}),
    },
  };
}

export { ref };
