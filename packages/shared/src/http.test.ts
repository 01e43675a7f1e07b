import { describe, expect, it } from 'vitest';
import { forwardableRequestHeaders, relayableResponseHeaders } from './http.ts';

describe('forwardableRequestHeaders', () => {
  it('strips hop-by-hop, Host, Content-Length, Authorization, Prefer, LP-* and headers named by Connection', () => {
    const out = forwardableRequestHeaders([
      ['Host', 'relay'],
      ['Connection', 'keep-alive, X-Hop'],
      ['X-Hop', '1'],
      ['Keep-Alive', 'timeout=5'],
      ['Transfer-Encoding', 'chunked'],
      ['Upgrade', 'h2c'],
      ['Proxy-Authorization', 'Basic x'],
      ['Content-Length', '3'],
      ['Authorization', 'OAuth ...'],
      ['Prefer', 'respond-async'],
      ['Expect', '100-continue'],
      ['LP-forward-url', 'https://x'],
      ['lp-authorization-override', 'Bearer t'],
      ['Content-Type', 'application/json'],
      ['X-Custom', 'a'],
      ['X-Custom', 'b'],
      ['Idempotency-Key', 'k1'],
    ]);
    expect(out).toEqual([
      ['Content-Type', 'application/json'],
      ['X-Custom', 'a'],
      ['X-Custom', 'b'],
      ['Idempotency-Key', 'k1'],
    ]);
  });
});

describe('relayableResponseHeaders', () => {
  it('strips framing and hop-by-hop headers but keeps repeated end-to-end ones', () => {
    const out = relayableResponseHeaders([
      ['transfer-encoding', 'chunked'],
      ['content-length', '10'],
      ['connection', 'close'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-type', 'text/plain'],
    ]);
    expect(out).toEqual([
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-type', 'text/plain'],
    ]);
  });
});
