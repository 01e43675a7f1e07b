import { describeOpenBaoConfigs } from './support/bao.ts';
import { defineManagementSuite } from './suites/management-suite.ts';

// The management suite against the Vault adapter and a real Vault-API server (OpenBao, one per file), once
// with a token and once with the AppRole (and least-privilege policy) that deploy/vault/init.sh set up.
describeOpenBaoConfigs('management', (config) => defineManagementSuite('vault', config));
