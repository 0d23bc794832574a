// Runs the compiled test files (out/test/**/*.test.js) with node's test runner, one file at a time. Node 20's
// `--test <dir>` would also run every helper and benchmark under a test/ folder, and it takes no globs.
// The TAP report streams through; the last line is always `N passed, N failed, N skipped` (cancelled tests count as
// failed), and the exit status is non-zero when anything failed.
// A run can never hang silently: a file whose tests are done exits even if it left a handle open
// (--test-force-exit), a test without its own timeout gets one, and a run that prints nothing for --idle-limit
// seconds (default 900) lists the processes still running, kills them all and fails.
import { execFileSync, spawn } from 'node:child_process';
import { clearInterval, setInterval } from 'node:timers';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const args = process.argv.slice(2);
// Suites with their own command: benchmarks, `npm run test:e2e` (e2e, vscode), `npm run test:webgpu` (webgpu, which
// runs `--suite webgpu` here once its driver is set up), `npm run test:soak` (soak: long runs of many requests),
// `npm run test:vsix` (vsix: the packaged extension, after `npm run package`).
const OWN_SUITES = new Set(['bench', 'e2e', 'soak', 'vscode', 'vsix', 'webgpu']);
const suiteAt = args.indexOf('--suite');
const suite = suiteAt >= 0 ? args.splice(suiteAt, 2)[1] : undefined;
if (suite !== undefined && !OWN_SUITES.has(suite)) {
  console.error(`--suite must be one of ${[...OWN_SUITES].join(', ')}`);
  process.exit(1);
}
const idleAt = args.indexOf('--idle-limit');
const idleLimitS = idleAt >= 0 ? Number(args.splice(idleAt, 2)[1]) : 900;
if (!(idleLimitS > 0)) {
  console.error('--idle-limit takes a number of seconds');
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
// Tests that set no timeout of their own: ten minutes (the soaks set theirs).
const testTimeoutMs = 600_000;
// Its own process group, so that a hung run is killed with every process it started.
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=tap', '--test-force-exit', `--test-timeout=${testTimeoutMs}`, ...files], {
  // No terminal input: a process group of its own reading the terminal would be stopped (SIGTTIN).
  stdio: ['ignore', 'pipe', 'inherit'],
  cwd: root,
  detached: true,
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => killGroup(sig));
let lastOutput = Date.now();
const watchdog = setInterval(() => {
  if (Date.now() - lastOutput < idleLimitS * 1000) return;
  clearInterval(watchdog);
  console.error(`\nrun-tests: no test output for ${idleLimitS} s; still running:\n${processTree(child.pid)}`);
  killGroup('SIGKILL');
}, 10_000);
watchdog.unref();

function killGroup(sig) {
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

/** The run's processes (pid, parent, elapsed time, command line), for the report of a hung run. */
function processTree(rootPid) {
  try {
    const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,etime=,args='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(l))
      .filter(Boolean);
    const inTree = new Set([rootPid]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [, pid, ppid] of rows) {
        if (inTree.has(Number(ppid)) && !inTree.has(Number(pid))) {
          inTree.add(Number(pid));
          grew = true;
        }
      }
    }
    return rows
      .filter(([, pid]) => inTree.has(Number(pid)))
      .map(([, pid, ppid, etime, cmd]) => `  ${pid} (parent ${ppid}, running ${etime}) ${cmd.slice(0, 300)}`)
      .join('\n');
  } catch (err) {
    return `  (ps failed: ${err.message})`;
  }
}

const totals = { pass: 0, fail: 0, cancelled: 0, skipped: 0 };
let pending = '';
child.stdout.on('data', (chunk) => {
  lastOutput = Date.now();
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
  clearInterval(watchdog);
  const failed = totals.fail + totals.cancelled + (code !== 0 && totals.fail + totals.cancelled === 0 ? 1 : 0);
  console.log(`${totals.pass} passed, ${failed} failed, ${totals.skipped} skipped`);
  process.exit(code ?? (signal ? 1 : 0));
});
