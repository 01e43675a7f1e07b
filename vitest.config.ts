import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          // Tests that name non-loopback addresses run only in the netns project (inside `unshare -n`).
          exclude: [...configDefaults.exclude, 'test/netns/**'],
          // Every response of an api process is checked against the OpenAPI document.
          setupFiles: ['test/support/openapi-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Each file starts its own Redis and processes; two at a time fits two cores.
          maxWorkers: 2,
          fileParallelism: true,
        },
      },
      {
        test: {
          // `npm run test:netns`: inside a network namespace with only loopback (see test/netns/namespace.ts).
          name: 'netns',
          include: ['test/netns/**/*.test.ts'],
          globalSetup: ['test/netns/setup.ts'],
          setupFiles: ['test/support/openapi-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 60_000,
          maxWorkers: 2,
          fileParallelism: true,
        },
      },
    ],
  },
});
