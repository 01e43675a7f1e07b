import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, RelayError } from '@mtls-relay/shared/errors';
import type { ErrorCode } from '@mtls-relay/shared/errors';
import { cloudflareCode, MAX_PER_PAGE, paginate, parsePagination } from './cloudflare.ts';

describe('Cloudflare error codes', () => {
  it('gives every catalogue code an integer of at least 1000, and the documented ones their fixed value', () => {
    for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
      expect(Number.isInteger(cloudflareCode(code)), code).toBe(true);
      expect(cloudflareCode(code), code).toBeGreaterThanOrEqual(1000);
    }
    expect(cloudflareCode('unauthenticated')).toBe(10000);
    expect(cloudflareCode('invalid_certificate')).toBe(12002);
    expect(cloudflareCode('invalid_private_key')).toBe(12003);
    expect(cloudflareCode('certificate_not_current')).toBe(12004);
    expect(cloudflareCode('invalid_hostname')).toBe(12005);
    expect(cloudflareCode('store_denied')).toBe(12015);
    expect(cloudflareCode('not_found')).toBe(12006);
    expect(cloudflareCode('conflict')).toBe(12007);
    expect(cloudflareCode('internal')).toBe(12500);
  });

  it('tells the input problems apart: each 400 cause has its own code', () => {
    const codes = (['invalid_body', 'invalid_account_id', 'invalid_certificate', 'invalid_private_key', 'certificate_not_current', 'invalid_hostname'] as const).map(cloudflareCode);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe('pagination', () => {
  it('defaults to page 1 of 50 and reads page and per_page', () => {
    expect(parsePagination({})).toEqual({ page: 1, perPage: 50 });
    expect(parsePagination({ page: '3', per_page: '20' })).toEqual({ page: 3, perPage: 20 });
  });

  it.each([{ page: '0' }, { page: '-1' }, { page: '1.5' }, { per_page: 'x' }, { per_page: String(MAX_PER_PAGE + 1) }, { page: ['1', '2'] }])(
    'refuses %o with invalid_body',
    (query) => {
      expect(() => parsePagination(query)).toThrow(RelayError);
    },
  );

  it('slices a page and counts it in result_info; a page past the end is empty', () => {
    const items = ['a', 'b', 'c', 'd', 'e'];
    expect(paginate(items, 2, 2)).toEqual({ items: ['c', 'd'], info: { page: 2, per_page: 2, count: 2, total_count: 5, total_pages: 3 } });
    expect(paginate(items, 4, 2)).toEqual({ items: [], info: { page: 4, per_page: 2, count: 0, total_count: 5, total_pages: 3 } });
    expect(paginate([], 1, 50).info).toEqual({ page: 1, per_page: 50, count: 0, total_count: 0, total_pages: 0 });
  });
});
