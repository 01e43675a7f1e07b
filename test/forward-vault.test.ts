import { describeOpenBaoConfigs } from './support/bao.ts';
import { defineForwardSuite } from './suites/forward-suite.ts';

// The forward suite against the Vault adapter and a real Vault-API server (OpenBao, one per file): once with a
// token, and once logged in with the AppRole that deploy/vault/init.sh registered, under the least-privilege
// policy of deploy/vault/mtls-relay-policy.hcl, on a KV v2 mount that is not the default one.
describeOpenBaoConfigs('forward', (config) => defineForwardSuite('vault', config));
