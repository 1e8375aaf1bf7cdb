// Lint rules, including the layering of DESIGN.md §4: each folder of src/ may import only
// the layers beneath it, and only the composition root (src/cli) reads the environment.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const LAYERS = ['api', 'analysis', 'metrics', 'routing', 'notify', 'observability', 'controller', 'sandbox', 'cli'];

/** What each layer may import from src/ (itself always). */
const ALLOWED = {
  api: [],
  analysis: ['api'],
  metrics: ['api'],
  routing: ['api'],
  notify: ['api'],
  observability: ['api'],
  controller: ['api', 'analysis', 'metrics', 'routing', 'notify', 'observability'],
  sandbox: ['api', 'routing', 'observability'],
  cli: LAYERS,
};

/** Third-party packages a layer may import, where the design restricts them. */
const PACKAGES = {
  api: ['zod', 'cron'],
  analysis: [],
};

function layerRules(layer) {
  const forbiddenLayers = LAYERS.filter((other) => other !== layer && !ALLOWED[layer].includes(other));
  const patterns = forbiddenLayers.map((other) => ({
    group: [`**/${other}/**`, `**/${other}`],
    message: `src/${layer} must not import src/${other} (DESIGN.md §4: ${layer} may use ${ALLOWED[layer].join(', ') || 'no other layer'})`,
  }));
  if (PACKAGES[layer] !== undefined) {
    patterns.push({
      regex: `^(?!\\.|node:|${PACKAGES[layer].join('|') || '$^'})`,
      message: `src/${layer} may import only ${[...PACKAGES[layer], 'node: built-ins', 'relative files'].join(', ')} (DESIGN.md §4)`,
    });
  }
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns }] },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '**/*.tmp.ts'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'TSEnumDeclaration', message: 'Use a union of string literals (STYLE.md).' }],
      'prefer-const': 'error',
      // client-node's models are classes whose documented use is plain object literals.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  ...LAYERS.map(layerRules),
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only src/cli reads the environment; hand values in (DESIGN.md §4).' }],
    },
  },
  {
    files: ['src/analysis/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Only src/cli reads the environment.' },
        { object: 'Date', property: 'now', message: 'The engine is handed `now` (DESIGN.md §4).' },
        { object: 'Math', property: 'random', message: 'The engine is handed its randomness (DESIGN.md §4).' },
      ],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'The engine uses no timers.' }, { name: 'setInterval', message: 'The engine uses no timers.' }],
    },
  },
  {
    // Tests edit manifests as loose objects on purpose: they build invalid input.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-dynamic-delete': 'off',
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'it', 'describe', 'suite'], package: 'node:test' }] }],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['bin/**/*.js'],
    languageOptions: { globals: { process: 'readonly' } },
  },
);
