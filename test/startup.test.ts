/**
 * Both services start through the shared bootstrap (packages/shared/src/bootstrap.ts): a bad setting stops
 * the real process at once with exit code 78 (EX_CONFIG) and a message naming the service and the variable,
 * before it touches Redis.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;

describe('service start-up with a bad setting', () => {
  it.each(['api', 'worker'])('the %s exits 78 naming the variable', (service) => {
    const r = spawnSync(process.execPath, [`services/${service}/src/main.ts`], {
      cwd: ROOT,
      // Redis points nowhere: the process must stop on the setting before it tries to connect.
      env: { PATH: process.env['PATH'], REDIS_URL: 'redis://127.0.0.1:1', TARGET_ALLOWLIST: '10.0.0.0/33' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(78);
    expect(r.stderr).toContain(`mtls-relay ${service}: invalid configuration:`);
    expect(r.stderr).toContain('TARGET_ALLOWLIST');
  });
});
