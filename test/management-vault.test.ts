import { defineManagementSuite } from './suites/management-suite.ts';

// The same suite against the Vault adapter, talking to the Vault-API-compatible test server.
defineManagementSuite('vault');
