// The project's test command (README, .ci/run): typecheck, lint and unit tests through turbo, then the
// end-to-end suite with real Redis, real processes and real TLS. Ends with a plain "N passed, N failed" line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';

const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1', DO_NOT_TRACK: '1' };
const extra = process.argv.slice(2);

function run(cmd: string, args: string[]): number {
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  return r.status ?? 1;
}

let unitCode = 0;
if (!extra.includes('--e2e-only')) {
  unitCode = run('turbo', ['run', 'typecheck', 'lint', 'test', '--output-logs=errors-only', '--log-prefix=task']);
  if (unitCode !== 0) console.error('typecheck, lint or unit tests failed');
}
mkdirSync('.data', { recursive: true });
const report = '.data/e2e-results.json';
const e2eCode = run('vitest', ['run', '--project', 'e2e', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...extra.filter((a) => a !== '--e2e-only')]);

if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number };
  console.log(`e2e: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
}
process.exit(unitCode !== 0 ? unitCode : e2eCode);
