// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'node_modules/**', 'server/onnx/gen/**', '.cache/**', 'test-artifacts/**', 'models/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // The engine must stay free of editor and protocol code; only extension/ may import vscode.
      'no-restricted-imports': ['error', { paths: [{ name: 'vscode', message: 'Only extension/ may import vscode.' }] }],
    },
  },
  {
    files: ['extension/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['server/engine/**/*.ts', 'server/converter/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'vscode', message: 'The engine knows nothing of VS Code.' }],
        patterns: [{ group: ['vscode-languageserver*', 'vscode-jsonrpc*', '../lsp/*', '../protocol/*'], message: 'The engine knows nothing of LSP.' }],
      }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js', '**/*.cjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', require: 'readonly', __dirname: 'readonly', module: 'writable', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
  },
  {
    // Plain CommonJS scripts (the bin launcher, tools) load modules with require().
    files: ['**/*.js', '**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
