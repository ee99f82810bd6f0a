// ESLint, kept to three rules the compiler cannot check: a promise nobody awaits or
// handles (it hides failures and races), type-only imports written as such, and one
// order of imports. Formatting and everything tsc already checks stay out of it.
//
// `make lint` (or `npm run lint`) runs it; test/unit/lint.test.ts runs it in `make test`.
import { defineConfig, globalIgnores } from 'eslint/config';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

// Built-in modules first, then packages, then the project's own files; inside a group,
// the order is free (a sorted order would churn every file for little gain).
const importOrder = [
  'error',
  {
    groups: ['builtin', 'external', ['internal', 'parent', 'sibling', 'index']],
    'newlines-between': 'ignore',
  },
];

export default defineConfig(
  globalIgnores(['dist/**', 'test-results/**', '.tap/**']),
  {
    files: ['**/*.ts', 'scripts/*.mjs'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        // The scripts are plain JavaScript outside tsconfig.json: a default project
        // gives them types, so that floating promises are caught there too.
        projectService: { allowDefaultProject: ['scripts/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: {
      '@typescript-eslint': tseslint.plugin,
      'import-x': importX,
    },
    rules: {
      // tap queues a subtest it is handed; `t.test(...)` without await is its own idiom.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          ignoreVoid: true,
          allowForKnownSafeCalls: [{ from: 'package', name: 'test', package: '@tapjs/test' }],
        },
      ],
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports' },
      ],
      'import-x/order': importOrder,
    },
  },
  {
    files: ['eslint.config.js'],
    languageOptions: { sourceType: 'module' },
    plugins: { 'import-x': importX },
    rules: { 'import-x/order': importOrder },
  },
  {
    // The web UI is three browser scripts with no imports; they are linted only so that a
    // syntax error in one fails here rather than in a browser.
    files: ['src/ui/**/*.js'],
    languageOptions: { sourceType: 'script' },
  },
);
