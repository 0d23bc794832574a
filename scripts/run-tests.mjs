// Runs the compiled test files (out/test/**/*.test.js) with node's test runner, one file at a time. Node 20's
// `--test <dir>` would also run every helper and benchmark under a test/ folder, and it takes no globs.
// The TAP report streams through; the last line is always `N passed, N failed, N skipped` (cancelled tests count as
// failed), and the exit status is non-zero when anything failed.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const args = process.argv.slice(2);
// Suites with their own command: benchmarks, `npm run test:e2e` (e2e, vscode), `npm run test:webgpu` (webgpu, which
// runs `--suite webgpu` here once its driver is set up), `npm run test:soak` (soak: long runs of many requests).
const OWN_SUITES = new Set(['bench', 'e2e', 'soak', 'vscode', 'webgpu']);
const suiteAt = args.indexOf('--suite');
const suite = suiteAt >= 0 ? args.splice(suiteAt, 2)[1] : undefined;
if (suite !== undefined && !OWN_SUITES.has(suite)) {
  console.error(`--suite must be one of ${[...OWN_SUITES].join(', ')}`);
  process.exit(1);
}
const base = join(root, 'out', 'test', ...(suite ? [suite] : []));
const filter = args;

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
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', ...files], { stdio: ['inherit', 'pipe', 'inherit'], cwd: root });
const totals = { pass: 0, fail: 0, cancelled: 0, skipped: 0 };
let pending = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += chunk.toString();
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  for (const line of lines) {
    // The run's own summary is the only unindented `# pass N` etc.
    const m = /^# (pass|fail|cancelled|skipped) (\d+)$/.exec(line);
    if (m) totals[m[1]] = Number(m[2]);
  }
});
child.on('close', (code, signal) => {
  const failed = totals.fail + totals.cancelled + (code !== 0 && totals.fail + totals.cancelled === 0 ? 1 : 0);
  console.log(`${totals.pass} passed, ${failed} failed, ${totals.skipped} skipped`);
  process.exit(code ?? (signal ? 1 : 0));
});
