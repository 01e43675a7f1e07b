/**
 * Validates real responses against the api's OpenAPI document (services/api/src/openapi): the path and method
 * must be documented, the status must be (exactly, as NXX, or by `default`), the content type must be one the
 * response declares, and a JSON body must match its schema. Any e2e test can apply it to what it receives.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Dispatcher } from 'undici';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { openApiDocument } from '../../services/api/src/openapi/document.ts';

type Obj = Record<string, unknown>;
type Headers = Record<string, string | string[] | undefined>;

const DOC_ID = 'openapi.json';
const doc = openApiDocument() as Obj;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
ajv.addSchema({ $id: DOC_ID, components: (doc['components'] as Obj) }, DOC_ID);

const templates = Object.keys(doc['paths'] as Obj)
  .map((template) => ({
    template,
    params: (template.match(/\{/g) ?? []).length,
    regex: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`),
  }))
  // Literal segments win over parameters (…/certificates/settings before …/certificates/{certificate_id}).
  .sort((a, b) => a.params - b.params);

const validators = new Map<string, ValidateFunction>();

function withDocumentRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withDocumentRefs);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `${DOC_ID}${v}` : withDocumentRefs(v)]),
    );
  }
  return value;
}

function mediaTypeOf(headers: Headers): string | undefined {
  const raw = headers['content-type'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value?.split(';')[0]?.trim().toLowerCase();
}

/**
 * The document's rule for everything it does not list (info.description): an unknown path or method answers 404 or
 * 405 with a problem, or with Cloudflare's envelope under /accounts.
 */
function undocumented(pathOnly: string, status: number, what: string): { key: string; response: Obj } {
  if (status !== 404 && status !== 405) throw new Error(`OpenAPI: ${what} (answered ${status}, not 404/405)`);
  const schema = { $ref: pathOnly.startsWith('/accounts/') ? '#/components/schemas/CloudflareFailure' : '#/components/schemas/Problem' };
  const type = pathOnly.startsWith('/accounts/') ? 'application/json' : 'application/problem+json';
  return { key: `undocumented ${status}${pathOnly.startsWith('/accounts/') ? ' (Cloudflare)' : ''}`, response: { content: { [type]: { schema } } } };
}

/** The documented operation's response for this exchange, or an Error saying what is undocumented. */
function responseFor(method: string, path: string, status: number): { key: string; response: Obj } {
  const pathOnly = path.split('?')[0] ?? path;
  const match = templates.find((t) => t.regex.test(pathOnly));
  if (match === undefined) return undocumented(pathOnly, status, `no documented path matches ${pathOnly}`);
  const operation = ((doc['paths'] as Obj)[match.template] as Obj)[method.toLowerCase()] as Obj | undefined;
  if (operation === undefined) return undocumented(pathOnly, status, `${method} ${match.template} is not documented`);
  const responses = operation['responses'] as Obj;
  for (const key of [String(status), `${String(status)[0]}XX`, 'default']) {
    if (responses[key] !== undefined) return { key: `${method.toUpperCase()} ${match.template} ${key}`, response: responses[key] as Obj };
  }
  throw new Error(`OpenAPI: ${method} ${match.template} does not document status ${status}`);
}

/**
 * Throws unless the response is one the OpenAPI document describes. `body` is the raw bytes (or text), or an
 * already parsed JSON value.
 */
export function assertMatchesOpenApi(method: string, path: string, status: number, headers: Headers, body: Buffer | string | unknown): void {
  const { key, response } = responseFor(method, path, status);
  const content = response['content'] as Record<string, { schema?: unknown }> | undefined;
  const raw = Buffer.isBuffer(body) ? body.toString('utf8') : body;
  const empty = raw === undefined || raw === null || raw === '';
  if (content === undefined) {
    if (!empty) throw new Error(`OpenAPI: ${key} declares no body, got ${String(raw).slice(0, 200)}`);
    return;
  }
  if (empty && (status === 204 || status === 304 || method.toUpperCase() === 'HEAD')) return;
  const type = mediaTypeOf(headers) ?? '';
  const declared = Object.keys(content);
  const mediaType = declared.find((m) => m === type) ?? declared.find((m) => m === `${type.split('/')[0]}/*`) ?? declared.find((m) => m === '*/*');
  if (mediaType === undefined) throw new Error(`OpenAPI: ${key} declares ${declared.join(', ')}, got content-type ${type || '(none)'}`);
  if (!/[/+]json$/.test(mediaType)) return;
  const value: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  const cacheKey = `${key} ${mediaType}`;
  let validate = validators.get(cacheKey);
  if (validate === undefined) {
    validate = ajv.compile(withDocumentRefs(content[mediaType]?.schema ?? {}) as Obj);
    validators.set(cacheKey, validate);
  }
  if (!validate(value)) {
    throw new Error(`OpenAPI: ${key} (${mediaType}) body does not match: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 500)}`);
  }
}

// --- every response of the e2e suite: a global undici interceptor checks what the api answers

const watched = new Set<string>();
const violations: string[] = [];
/**
 * Not part of the api's contract: bull-board's own API, Swagger UI's files and the console's files (static assets
 * under /docs and /console; the pages themselves are documented).
 */
const UNCHECKED = [/^\/admin\/queues\/./, /^\/docs\/./, /^\/console\/./];

/** Responses from this origin (an api process of the test) are checked against the document from now on. */
export function watchApi(url: string): void {
  watched.add(new URL(url).origin);
}

let checkedCount = 0;
/** How many responses the interceptor has checked so far (in this test file). */
export function openApiChecked(): number {
  return checkedCount;
}

/** Violations recorded since the last call (the e2e setup fails the test that caused them). */
export function takeOpenApiViolations(): string[] {
  return violations.splice(0, violations.length);
}

type Handler = Dispatcher.DispatchHandler;

/** An undici interceptor: records every response of a watched api that the OpenAPI document does not describe. */
export function openApiInterceptor(): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler: Handler) => {
    const origin = opts.origin === undefined ? undefined : new URL(String(opts.origin)).origin;
    const path = opts.path.split('?')[0] ?? opts.path;
    if (origin === undefined || !watched.has(origin) || UNCHECKED.some((r) => r.test(path)) || handler.onResponseStart === undefined) {
      return dispatch(opts, handler);
    }
    let status = 0;
    let headers: Headers = {};
    const chunks: Buffer[] = [];
    return dispatch(opts, {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onRequestUpgrade: (controller, statusCode, h, socket) => handler.onRequestUpgrade?.(controller, statusCode, h, socket),
      onResponseStart: (controller, statusCode, h, statusMessage) => {
        status = statusCode;
        headers = h as Headers;
        return handler.onResponseStart?.(controller, statusCode, h, statusMessage);
      },
      onResponseData: (controller, chunk) => {
        chunks.push(chunk);
        return handler.onResponseData?.(controller, chunk);
      },
      onResponseEnd: (controller, trailers) => {
        try {
          checkedCount += 1;
          assertMatchesOpenApi(opts.method, opts.path, status, headers, Buffer.concat(chunks));
        } catch (err) {
          violations.push(`${opts.method} ${opts.path} → ${status}: ${(err as Error).message}`);
        }
        return handler.onResponseEnd?.(controller, trailers);
      },
      onResponseError: (controller, err) => handler.onResponseError?.(controller, err),
    });
  };
}
