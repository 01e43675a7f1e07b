import { defineManagementSuite } from './suites/management-suite.ts';

defineManagementSuite('embedded');
