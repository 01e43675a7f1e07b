import { afterAll, beforeAll } from 'vitest';
import { describeWithBao, runInitScript, startBao } from './support/bao.ts';
import type { Bao, InitResult } from './support/bao.ts';
import { defineManagementSuite } from './suites/management-suite.ts';

// The management suite against the Vault adapter and a real Vault-API server (OpenBao, one per file), once
// with a token and once with the AppRole (and least-privilege policy) that deploy/vault/init.sh set up.
describeWithBao('OpenBao', () => {
  let bao: Bao;
  let init: InitResult;
  beforeAll(async () => {
    bao = await startBao();
    init = await runInitScript(bao, { mount: 'relay-kv', pathPrefix: 'management-suite' });
  });
  afterAll(async () => {
    await bao?.close();
  });

  defineManagementSuite('vault', {
    label: 'OpenBao, token auth, KV v2 at secret/',
    vault: () => ({ addr: bao.addr, adminToken: bao.rootToken, token: bao.rootToken, mount: 'secret', pathPrefix: 'management-token' }),
  });
  defineManagementSuite('vault', {
    label: 'OpenBao, AppRole under the least-privilege policy, KV v2 at relay-kv/',
    vault: () => ({
      addr: bao.addr,
      adminToken: bao.rootToken,
      roleId: init.roleId,
      secretId: init.secretId,
      mount: init.mount,
      pathPrefix: init.pathPrefix,
    }),
  });
});
