import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '.data/**', 'bench-results/**', '.turbo/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  {
    // The console's browser modules (served as they are, no build step).
    files: ['services/api/src/console/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(['document', 'window', 'location', 'sessionStorage', 'fetch', 'URL', 'Node', 'btoa'].map((g) => [g, 'readonly'])),
    },
  },
  {
    files: ['**/main.ts', 'scripts/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
);
