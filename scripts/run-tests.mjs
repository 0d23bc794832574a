// Runs the compiled test files (out/test/**/*.test.js) with node's test runner, one file at a time. Node 20's
// `--test <dir>` would also run every helper and benchmark under a test/ folder, and it takes no globs.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const base = join(root, 'out', 'test');
const filter = process.argv.slice(2);

// Suites with their own command: benchmarks, `npm run test:e2e` (e2e, vscode), `npm run test:webgpu` (webgpu).
const OWN_SUITES = new Set(['bench', 'e2e', 'vscode', 'webgpu']);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return OWN_SUITES.has(name) ? [] : walk(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

const files = walk(base)
  .sort()
  .filter((f) => filter.length === 0 || filter.some((s) => relative(base, f).includes(s)));
if (files.length === 0) {
  console.error(`no test files under ${base}${filter.length ? ` matching ${filter.join(', ')}` : ''}; run \`npm run build\` first`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
