import { afterAll, beforeAll } from 'vitest';
import { describeWithBao, runInitScript, startBao } from './support/bao.ts';
import type { Bao, InitResult } from './support/bao.ts';
import { defineForwardSuite } from './suites/forward-suite.ts';

// The forward suite against the Vault adapter and a real Vault-API server (OpenBao, one per file): once with a
// token, and once logged in with the AppRole that deploy/vault/init.sh registered, under the least-privilege
// policy of deploy/vault/mtls-relay-policy.hcl, on a KV v2 mount that is not the default one.
describeWithBao('OpenBao', () => {
  let bao: Bao;
  let init: InitResult;
  beforeAll(async () => {
    bao = await startBao();
    init = await runInitScript(bao, { mount: 'relay-kv', pathPrefix: 'forward-suite' });
  });
  afterAll(async () => {
    await bao?.close();
  });

  defineForwardSuite('vault', {
    label: 'OpenBao, token auth, KV v2 at secret/',
    vault: () => ({ addr: bao.addr, adminToken: bao.rootToken, token: bao.rootToken, mount: 'secret', pathPrefix: 'forward-token' }),
  });
  defineForwardSuite('vault', {
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
