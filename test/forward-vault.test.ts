import { defineForwardSuite } from './suites/forward-suite.ts';

// The same suite against the Vault adapter, talking to the Vault-API-compatible test server.
defineForwardSuite('vault');
