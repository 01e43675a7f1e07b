/**
 * e2e setup (vitest setupFiles): every response an api process of the suite sends to an undici client (request,
 * fetch) is checked against the OpenAPI document; a test after which an undocumented response was seen fails.
 */
import { getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { afterAll, afterEach } from 'vitest';
import { openApiInterceptor, takeOpenApiViolations } from './openapi.ts';

setGlobalDispatcher(getGlobalDispatcher().compose(openApiInterceptor()));

function failOnViolations(): void {
  const seen = takeOpenApiViolations();
  if (seen.length > 0) throw new Error(`responses the OpenAPI document does not describe:\n  ${seen.join('\n  ')}`);
}

afterEach(failOnViolations);
afterAll(failOnViolations);
