/**
 * The repository's import map, read from the source text: every static `import`/`export … from`, side-effect
 * `import '…'` and literal dynamic `import('…')`, resolved to a file of this repository (relative paths and the
 * workspace packages' `exports`); node: and npm packages are left out.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const SPECIFIER = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The specifiers a file's text imports (comments stripped first, so a path in prose is no import). */
export function specifiersOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  return [...code.matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2]) as string);
}

/** Workspace package name → (subpath → file, repo-relative), from each package.json's `exports`. */
function workspaceExports(): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const group of ['packages', 'services']) {
    for (const dir of readdirSync(join(ROOT, group))) {
      const manifest = join(ROOT, group, dir, 'package.json');
      if (!existsSync(manifest)) continue;
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string; exports?: Record<string, string> };
      const map = new Map<string, string>();
      for (const [sub, target] of Object.entries(pkg.exports ?? {})) map.set(sub, join(group, dir, target));
      out.set(pkg.name, map);
    }
  }
  return out;
}

/** Every .ts/.js file under the given repo-relative folders (node_modules skipped). */
export function sourceFiles(...folders: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(ROOT, dir))) {
      if (entry === 'node_modules' || entry.startsWith('.')) continue;
      const path = join(dir, entry);
      if (statSync(join(ROOT, path)).isDirectory()) walk(path);
      else if (/\.(ts|js|mjs)$/.test(entry)) out.push(path);
    }
  };
  for (const f of folders) walk(f);
  return out.sort();
}

export interface ImportEdge {
  from: string;
  to: string;
  specifier: string;
}

/** The repository files `file` (repo-relative) imports. */
export function importsOf(file: string, exportsMap = workspaceExports()): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const specifier of specifiersOf(readFileSync(join(ROOT, file), 'utf8'))) {
    let to: string | undefined;
    if (specifier.startsWith('.')) to = relative(ROOT, resolve(ROOT, dirname(file), specifier));
    else {
      const m = /^(@[^/]+\/[^/]+)(\/.*)?$/.exec(specifier);
      const pkg = m === null ? undefined : exportsMap.get(m[1] as string);
      if (pkg !== undefined) {
        to = pkg.get(`.${m?.[2] ?? ''}`);
        if (to === undefined) throw new Error(`${file}: ${specifier} is not an export of its package`);
      }
    }
    if (to !== undefined) edges.push({ from: file, to, specifier });
  }
  return edges;
}

/** The import graph of the given folders. */
export function importGraph(...folders: string[]): Map<string, ImportEdge[]> {
  const exportsMap = workspaceExports();
  return new Map(sourceFiles(...folders).map((f) => [f, importsOf(f, exportsMap)]));
}

/** Every file reachable from `entry` through repository imports, `entry` included. */
export function importClosure(entry: string): string[] {
  const exportsMap = workspaceExports();
  const seen = new Set<string>([entry]);
  const queue = [entry];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const { to } of importsOf(file, exportsMap)) {
      if (!seen.has(to)) {
        seen.add(to);
        queue.push(to);
      }
    }
  }
  return [...seen].sort();
}

/** The import cycles of a graph, each as the list of files around it (Tarjan's strongly connected components). */
export function cyclesOf(graph: Map<string, ImportEdge[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const { to: w } of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, indices.get(w) as number));
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      for (let w = stack.pop(); w !== undefined; w = w === v ? undefined : stack.pop()) {
        onStack.delete(w);
        component.push(w);
      }
      const selfLoop = (graph.get(v) ?? []).some((e) => e.to === v);
      if (component.length > 1 || selfLoop) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return cycles;
}
