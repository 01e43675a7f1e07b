import { defineForwardSuite } from './suites/forward-suite.ts';

defineForwardSuite('embedded');
