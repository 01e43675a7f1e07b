import type { VaultTarget } from '../support/relay.ts';

/** How a shared suite runs against the Vault adapter. */
export interface SuiteOptions {
  /** Shown in the suite's name instead of "<kind> store". */
  label?: string;
  /** Called in the suite's beforeAll: the Vault-API server (and credentials) the relay uses. */
  vault?: () => VaultTarget;
}
