/**
 * The layers of the repository, checked on its import map (test/support/imports.ts): packages/shared is the
 * bottom and imports no service, test or script; a service imports shared and itself, never another service,
 * a test or a script (its unit tests may use the dev tooling in scripts/lib); dev tooling (scripts/lib and the scripts npm start and compose run) imports no test; and
 * no file imports itself round a cycle.
 */
import { describe, expect, it } from 'vitest';
import { cyclesOf, importGraph, specifiersOf } from './support/imports.ts';
import type { ImportEdge } from './support/imports.ts';

const graph = importGraph('packages', 'services', 'scripts', 'test');
const edges = [...graph.values()].flat();
const shown = (list: ImportEdge[]): string[] => list.map((e) => `${e.from} -> ${e.specifier}`);
const serviceOf = (file: string): string | undefined => /^services\/([^/]+)\//.exec(file)?.[1];

describe('the import map', () => {
  it('was read: the services reach shared through its package exports, tests import service code', () => {
    expect(graph.size).toBeGreaterThan(150);
    expect(edges.some((e) => e.from.startsWith('services/api/') && e.to === 'packages/shared/src/errors.ts')).toBe(true);
    expect(edges.some((e) => e.from.startsWith('test/') && e.to.startsWith('services/'))).toBe(true);
  });

  it('packages/shared imports no service, test or script', () => {
    expect(shown(edges.filter((e) => e.from.startsWith('packages/') && /^(services|test|scripts)\//.test(e.to)))).toEqual([]);
  });

  it('a service imports no other service, no test and no script (its unit tests may use the dev tooling in scripts/lib)', () => {
    const upward = edges.filter((e) => {
      const from = serviceOf(e.from);
      if (from === undefined) return false;
      const to = serviceOf(e.to);
      const devTooling = e.from.endsWith('.test.ts') && e.to.startsWith('scripts/lib/');
      return (to !== undefined && to !== from) || e.to.startsWith('test/') || (e.to.startsWith('scripts/') && !devTooling);
    });
    expect(shown(upward)).toEqual([]);
  });

  it('the dev tooling (scripts/lib, npm start, the compose demo, token minting) imports nothing from test/', () => {
    // The bench and the soak measure the relay the way the tests run it, so they start it through the test harness
    // (test/support/relay.ts, with its private Redis and the secrets-at-rest scan); nothing a user runs does.
    // The test command (scripts/test.ts) reports which Vault-API server the suites found (test/support/bao.ts).
    const harnessUsers = (from: string): boolean => from.startsWith('scripts/bench/') || from === 'scripts/soak.ts' || from === 'scripts/test.ts';
    expect(shown(edges.filter((e) => e.from.startsWith('scripts/') && !harnessUsers(e.from) && e.to.startsWith('test/')))).toEqual([]);
  });

  it('has no cycles', () => {
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('the reader finds every kind of import, and not paths in comments (the checks above can fail)', () => {
    const text = [
      "import { a } from './a.ts';",
      "import type { B } from '../b.ts';",
      "export { c } from './c.ts';",
      "import './side.ts';",
      "const d = await import('./d.ts');",
      '// import { e } from "./commented.ts";',
      "/* import { f } from './block.ts'; */",
      "const url = 'https://example.com/x'; // not an import",
    ].join('\n');
    expect(specifiersOf(text)).toEqual(['./a.ts', '../b.ts', './c.ts', './side.ts', './d.ts']);
    const loop = (from: string, to: string): [string, ImportEdge[]] => [from, [{ from, to, specifier: to }]];
    expect(cyclesOf(new Map([loop('x.ts', 'y.ts'), loop('y.ts', 'z.ts'), loop('z.ts', 'x.ts'), loop('w.ts', 'x.ts')]))).toEqual([['x.ts', 'y.ts', 'z.ts']]);
  });
});
