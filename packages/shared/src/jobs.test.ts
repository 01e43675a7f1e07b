import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createKeyRing, SealError } from './crypto.ts';
import { forwardBatchSchema } from './jobs.ts';
import { batchRequestReader, openBatchRequests, sealBatchRequests, sealRequest } from './sealed-parts.ts';
import type { ForwardEntry, RequestParts } from './jobs.ts';

const ring = createKeyRing(randomBytes(32));
const batchId = '0b5c43a2-6e6f-4f1e-9d1c-2a3b4c5d6fff';
const idOf = (i: number): string => `${batchId.slice(0, -3)}${i.toString(16).padStart(3, '0')}`;
const parts = (i: number): RequestParts => ({
  headers: [['Authorization', `Bearer secret-${i}`], ['Content-Type', 'application/json']],
  query: i % 2 === 0 ? '' : `?api_key=k${i}`,
  body: i === 1 ? Buffer.alloc(0) : Buffer.from(`{"n":${i},"bytes":"${'x'.repeat(i * 100)}"}`),
});
const entry = (i: number, extra: Partial<ForwardEntry> = {}): ForwardEntry => ({
  id: idOf(i), accountId: 'acc', serviceName: '', url: 'https://example.com/p', method: 'POST', requireCertificate: false, keyed: false, requestId: 'r', enqueuedAt: 0, ...extra,
});

describe("a batch's requests sealed in one piece", () => {
  const forwards = [0, 1, 2, 3].map((i) => ({ id: idOf(i), parts: parts(i) }));
  const sealed = sealBatchRequests(ring, batchId, forwards);

  it('opens to every forward its own headers, query and body bytes, and holds none of them in clear', () => {
    expect(sealed).toMatch(/^s1\./);
    for (const i of [0, 1, 2, 3]) expect(sealed).not.toContain(`secret-${i}`);
    const opened = openBatchRequests(ring, batchId, sealed);
    expect([...opened.keys()]).toEqual(forwards.map((f) => f.id));
    for (const f of forwards) expect(opened.get(f.id)).toEqual(f.parts);
  });

  it('is bound to its batch: under another batch id it does not open', () => {
    expect(() => openBatchRequests(ring, idOf(0x123), sealed)).toThrow(SealError);
  });

  it('the reader opens the shared piece once for the entries without a request, and an entry\'s own request as before', () => {
    const own = entry(9, { request: sealRequest(ring, idOf(9), parts(9)) });
    const batch = forwardBatchSchema.parse({ v: 2, forwards: [entry(0), entry(2), own], requests: sealed, attemptsBefore: 0, maxAttempts: 3, keepSeconds: 60, retry: false });
    const read = batchRequestReader(ring, batchId, batch);
    expect(read(entry(0))).toEqual(parts(0));
    expect(read(entry(2))).toEqual(parts(2));
    expect(read(own)).toEqual(parts(9));
    // An entry the piece does not name, or a batch without the piece: that forward fails alone, with a seal error.
    expect(() => read(entry(7))).toThrow(SealError);
    expect(() => batchRequestReader(ring, batchId, {})(entry(0))).toThrow(SealError);
  });

  it('a piece that does not open fails each forward that needs it, with the same error every time', () => {
    const tampered = `${sealed.slice(0, -4)}AAAA`;
    const read = batchRequestReader(ring, batchId, { requests: tampered });
    expect(() => read(entry(0))).toThrow(SealError);
    expect(() => read(entry(2))).toThrow(SealError);
  });
});
