import { openBuffer, sealBuffer, SealError } from './crypto.ts';
import type { KeyRing } from './crypto.ts';
import { isResponseGroupField } from './jobs.ts';
import type { ForwardBatch, ForwardEntry, ForwardResult, HeaderList, RequestParts, ResponseParts } from './jobs.ts';

/**
 * How the parts of forwards travel sealed (AES-256-GCM under MASTER_KEY, crypto.ts): a request, a batch's requests, a
 * response, a group of responses. Each sealed piece is bound to its place (the forward, the batch, the job and field)
 * and carries the forward ids inside it, so that nothing sealed can be moved to another forward.
 */

// --- sealing, bound to the forward's id and the direction. Each direction is ONE sealed piece (one cipher
// set-up, not one per part): a 4-byte length, the JSON of the headers (and the query), then the body bytes.

function frame(meta: unknown, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length + body.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  body.copy(out, 4 + json.length);
  return out;
}

function unframe(plain: Buffer): { meta: unknown; body: Buffer } {
  if (plain.length < 4) throw new SealError('sealed frame is truncated');
  const n = plain.readUInt32BE(0);
  return { meta: JSON.parse(plain.subarray(4, 4 + n).toString('utf8')), body: plain.subarray(4 + n) };
}

export function sealRequest(ring: KeyRing, forwardId: string, parts: RequestParts): string {
  return sealBuffer(ring, frame({ h: parts.headers, q: parts.query }, parts.body), `job:${forwardId}:request`);
}

export function openRequest(ring: KeyRing, forwardId: string, sealedRequest: string): RequestParts {
  const { meta, body } = unframe(openBuffer(ring, sealedRequest, `job:${forwardId}:request`));
  const m = meta as { h: HeaderList; q: string };
  return { headers: m.h, query: m.q, body };
}

/**
 * Several pieces in one sealed frame: the frame's JSON lists each piece's fields with its body length last, and the
 * bodies follow one after the other. Each piece names its forward inside the sealed frame, so that a piece cannot be
 * moved to another forward.
 */
function sealPieces(ring: KeyRing, aad: string, pieces: ReadonlyArray<{ meta: unknown[]; body: Buffer }>): string {
  const meta = pieces.map((p) => [...p.meta, p.body.length]);
  const bodies = pieces.map((p) => p.body);
  return sealBuffer(ring, frame(meta, bodies.length === 1 ? (bodies[0] as Buffer) : Buffer.concat(bodies)), aad);
}

/** The pieces of a frame sealed by sealPieces, each as its fields (`fields` of them) and its body. */
function openPieces(ring: KeyRing, aad: string, sealedPieces: string, fields: number, what: string): Array<{ meta: unknown[]; body: Buffer }> {
  const { meta, body } = unframe(openBuffer(ring, sealedPieces, aad));
  if (!Array.isArray(meta)) throw new SealError(`sealed ${what} are not a list`);
  const out: Array<{ meta: unknown[]; body: Buffer }> = [];
  let offset = 0;
  for (const item of meta as unknown[]) {
    const length = Array.isArray(item) && item.length === fields + 1 ? (item[fields] as unknown) : undefined;
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || offset + length > body.length) {
      throw new SealError(`sealed ${what} do not hold together`);
    }
    out.push({ meta: (item as unknown[]).slice(0, fields), body: body.subarray(offset, offset + length) });
    offset += length;
  }
  return out;
}

/**
 * The requests of a batch's forwards in one sealed piece, bound to the batch job's id: per forward, its id, headers,
 * query and body.
 */
export function sealBatchRequests(ring: KeyRing, batchId: string, forwards: ReadonlyArray<{ id: string; parts: RequestParts }>): string {
  return sealPieces(ring, `job:${batchId}:requests`, forwards.map(({ id, parts }) => ({ meta: [id, parts.headers, parts.query], body: parts.body })));
}

/** The requests sealed by sealBatchRequests, by forward id. Throws SealError when the piece does not open or hold together. */
export function openBatchRequests(ring: KeyRing, batchId: string, sealedRequests: string): Map<string, RequestParts> {
  const out = new Map<string, RequestParts>();
  for (const { meta, body } of openPieces(ring, `job:${batchId}:requests`, sealedRequests, 3, 'batch requests')) {
    const [id, headers, query] = meta as [unknown, unknown, unknown];
    if (typeof id !== 'string' || !Array.isArray(headers) || typeof query !== 'string') throw new SealError('sealed batch requests do not hold together');
    out.set(id, { headers: headers as HeaderList, query, body });
  }
  return out;
}

/**
 * Where each forward of a batch finds its request: its own `request`, or the batch's shared `requests` (opened once,
 * on first use). What fails to open fails the forwards that need it, each on its own, as a per-forward seal would.
 */
export function batchRequestReader(ring: KeyRing, batchId: string, batch: Pick<ForwardBatch, 'requests'>): (entry: ForwardEntry) => RequestParts {
  let shared: Map<string, RequestParts> | Error | undefined;
  return (entry) => {
    if (entry.request !== undefined) return openRequest(ring, entry.id, entry.request);
    if (batch.requests === undefined) throw new SealError(`forward ${entry.id} carries no request`);
    if (shared === undefined) {
      try {
        shared = openBatchRequests(ring, batchId, batch.requests);
      } catch (err) {
        shared = err instanceof Error ? err : new SealError('sealed batch requests failed to open');
      }
    }
    if (shared instanceof Error) throw shared;
    const parts = shared.get(entry.id);
    if (parts === undefined) throw new SealError(`forward ${entry.id} is not in the batch's sealed requests`);
    return parts;
  };
}

export function sealResponse(ring: KeyRing, forwardId: string, parts: ResponseParts): string {
  return sealBuffer(ring, frame({ h: parts.headers }, parts.body), `job:${forwardId}:response`);
}

export function openResponse(ring: KeyRing, forwardId: string, sealedResponse: string): ResponseParts {
  const { meta, body } = unframe(openBuffer(ring, sealedResponse, `job:${forwardId}:response`));
  return { headers: (meta as { h: HeaderList }).h, body };
}

/**
 * Responses of several forwards of one job in one sealed piece (one cipher set-up for all of them), kept in the
 * job's hash at `field` (RESPONSE_GROUP_FIELD) and bound to the job and the field; each response names its forward
 * inside the piece. The worker's recorder seals the small responses it records together this way.
 */
export function sealResponseGroup(ring: KeyRing, jobId: string, field: string, members: ReadonlyArray<{ id: string; parts: ResponseParts }>): string {
  return sealPieces(ring, `job:${jobId}:${field}`, members.map(({ id, parts }) => ({ meta: [id, parts.headers], body: parts.body })));
}

/** The responses sealed by sealResponseGroup, by forward id. Throws SealError when the piece does not open or hold together. */
export function openResponseGroup(ring: KeyRing, jobId: string, field: string, sealedGroup: string): Map<string, ResponseParts> {
  const out = new Map<string, ResponseParts>();
  for (const { meta, body } of openPieces(ring, `job:${jobId}:${field}`, sealedGroup, 2, 'response groups')) {
    const [id, headers] = meta as [unknown, unknown];
    if (typeof id !== 'string' || !Array.isArray(headers)) throw new SealError('sealed response groups do not hold together');
    out.set(id, { headers: headers as HeaderList, body });
  }
  return out;
}

/**
 * A finished forward's response: `parts` when its reader already opened them from the response group, else the
 * result's own sealed piece. A group the reader did not open is not readable here (SealError).
 */
export function responseOf(ring: KeyRing, forwardId: string, result: ForwardResult, parts: ResponseParts | undefined): ResponseParts {
  if (parts !== undefined) return parts;
  if (isResponseGroupField(result.response)) throw new SealError(`the response of ${forwardId} is in a group that was not read`);
  return openResponse(ring, forwardId, result.response);
}
