import { describe, expect, it } from 'vitest';
import { parsePrefer } from './prefer.ts';

describe('parsePrefer (RFC 7240)', () => {
  it('nothing asked: synchronous, no wait given', () => {
    expect(parsePrefer(undefined)).toEqual({ respondAsync: false, waitSeconds: undefined });
    expect(parsePrefer('')).toEqual({ respondAsync: false, waitSeconds: undefined });
  });

  it.each([
    ['respond-async', { respondAsync: true, waitSeconds: undefined }],
    ['Respond-Async', { respondAsync: true, waitSeconds: undefined }],
    ['wait=10', { respondAsync: false, waitSeconds: 10 }],
    ['wait="10"', { respondAsync: false, waitSeconds: 10 }],
    [' wait = 7 ', { respondAsync: false, waitSeconds: 7 }],
    ['respond-async, wait=5', { respondAsync: true, waitSeconds: 5 }],
    ['wait=5; foo=bar, respond-async; x', { respondAsync: true, waitSeconds: 5 }],
    ['return=minimal, handling=lenient', { respondAsync: false, waitSeconds: undefined }],
  ])('%j → %j', (header, expected) => {
    expect(parsePrefer(header)).toEqual(expected);
  });

  it('reads every Prefer header line, the last wait winning', () => {
    expect(parsePrefer(['wait=3', 'respond-async', 'wait=9'])).toEqual({ respondAsync: true, waitSeconds: 9 });
  });

  it.each(['wait=-1', 'wait=1.5', 'wait=soon', 'wait=', 'wait'])('ignores a wait that is not whole seconds: %j', (header) => {
    expect(parsePrefer(header).waitSeconds).toBeUndefined();
  });

  it('a preference parameter does not change the preference it belongs to', () => {
    expect(parsePrefer('respond-async; wait=3')).toEqual({ respondAsync: true, waitSeconds: undefined });
  });
});
