import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { TARGETS } from './targets';
import { repoRoot } from './targets/repo';
import type { FromFuzzWorker, FuzzWorkerData } from './protocol';

/**
 * `npm run fuzz -- <target>|--all [--seconds N] [--seed N] [--timeout S] [--rss-mb N]`, `npm run fuzz -- --list`.
 * Runs a target's coverage-guided fuzzing loop in a worker thread and watches it: an input that raises anything but
 * the parser's own refusal, runs longer than --timeout seconds, or takes the process above --rss-mb is a finding,
 * saved under test-artifacts/fuzz/<target>/. Inputs that reached new code accumulate in .cache/fuzz/<target>/.
 */
const root = repoRoot;
const usage = 'usage: npm run fuzz -- <target>|--all [--seconds N] [--seed N] [--timeout S] [--rss-mb N] | --list';

interface Options {
  seconds: number;
  seed: number;
  timeoutS: number;
  rssMb: number;
}

interface Outcome {
  target: string;
  execs: number;
  corpus: number;
  features: number;
  seconds: number;
  finding?: string;
}

function parseArgs(argv: string[]): { names: string[]; opts: Options } | undefined {
  const opts: Options = { seconds: 60, seed: Date.now() % 2 ** 31, timeoutS: 20, rssMb: 3072 };
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--list') {
      for (const t of TARGETS) console.log(`${t.name.padEnd(20)} ${t.description}`);
      return undefined;
    } else if (a === '--all') names.push(...TARGETS.map((t) => t.name));
    else if (a === '--seconds') opts.seconds = num();
    else if (a === '--seed') opts.seed = Math.floor(num());
    else if (a === '--timeout') opts.timeoutS = num();
    else if (a === '--rss-mb') opts.rssMb = num();
    else if (TARGETS.some((t) => t.name === a)) names.push(a);
    else throw new Error(`unknown target or option ${a}\n${usage}\ntargets: ${TARGETS.map((t) => t.name).join(', ')}`);
  }
  if (names.length === 0) throw new Error(usage);
  return { names, opts };
}

function saveFinding(target: string, kind: string, input: Uint8Array, report: string): string {
  const dir = join(root, 'test-artifacts', 'fuzz', target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${kind}-${createHash('sha1').update(input).digest('hex')}`);
  writeFileSync(file, input);
  writeFileSync(`${file}.txt`, report);
  return file;
}

function runTarget(name: string, opts: Options): Promise<Outcome> {
  const shared = new SharedArrayBuffer(8 + 4 * 1024 * 1024);
  const execs = new Int32Array(shared, 0, 2);
  const bytes = new Uint8Array(shared, 8);
  const data: FuzzWorkerData = {
    target: name,
    seedDirs: [join(root, 'test', 'fuzz', 'corpus', name)],
    workDir: join(root, '.cache', 'fuzz', name),
    seconds: opts.seconds,
    seed: opts.seed,
    shared,
  };
  const started = Date.now();
  console.log(`fuzz ${name}: ${opts.seconds} s, seed ${opts.seed}, per-input limit ${opts.timeoutS} s, memory limit ${opts.rssMb} MB`);
  const worker = new Worker(join(__dirname, 'worker.js'), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: Math.floor(opts.rssMb / 2) } });
  const outcome: Outcome = { target: name, execs: 0, corpus: 0, features: 0, seconds: 0 };
  const currentInput = (): Uint8Array => bytes.slice(0, Atomics.load(execs, 1));
  return new Promise((resolve) => {
    let settled = false;
    const finish = (finding?: { kind: string; message: string; input: Uint8Array; report: string }): void => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      outcome.seconds = Math.round((Date.now() - started) / 1000);
      if (finding) {
        const file = saveFinding(name, finding.kind, finding.input, finding.report);
        outcome.finding = `${finding.kind}: ${finding.message} (input saved to ${file})`;
        console.log(`fuzz ${name}: FINDING ${outcome.finding}`);
      }
      void worker.terminate().then(() => resolve(outcome));
    };
    let lastExecs = -1;
    let lastChange = Date.now();
    const watch = setInterval(() => {
      const n = Atomics.load(execs, 0);
      if (n !== lastExecs) {
        lastExecs = n;
        lastChange = Date.now();
      } else if (n > 0 && Date.now() - lastChange > opts.timeoutS * 1000) {
        const input = currentInput();
        finish({ kind: 'timeout', message: `an input ran longer than ${opts.timeoutS} s`, input, report: `no progress for ${opts.timeoutS} s` });
      }
      const rss = process.memoryUsage.rss() / 2 ** 20;
      if (rss > opts.rssMb) {
        finish({ kind: 'oom', message: `memory reached ${Math.round(rss)} MB`, input: currentInput(), report: `rss ${Math.round(rss)} MB > ${opts.rssMb} MB` });
      }
    }, 250);
    worker.on('message', (m: FromFuzzWorker) => {
      if (m.type === 'stats' || m.type === 'done') {
        Object.assign(outcome, { execs: m.execs, corpus: m.corpus, features: m.features });
        const secs = (Date.now() - started) / 1000;
        console.log(`fuzz ${name}: ${m.execs} execs, corpus ${m.corpus}, ${m.features} coverage features, ${Math.round(m.execs / secs)} exec/s (taken under load)`);
        if (m.type === 'done') finish();
      } else if (m.type === 'finding') {
        outcome.execs = Atomics.load(execs, 0);
        finish({ kind: 'crash', message: m.message, input: m.input, report: m.stack });
      } else {
        console.error(`fuzz ${name}: the harness failed: ${m.stack}`);
        outcome.finding = `harness error: ${m.message}`;
        finish();
      }
    });
    worker.on('error', (err) => {
      outcome.execs = Atomics.load(execs, 0);
      const oom = /out of memory/i.test(err.message);
      finish({ kind: oom ? 'oom' : 'crash', message: err.message, input: currentInput(), report: err.stack ?? err.message });
    });
    worker.on('exit', (code) => {
      if (!settled) finish({ kind: 'crash', message: `worker exited with code ${code}`, input: currentInput(), report: `exit ${code}` });
    });
  });
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  if (!parsed) return 0;
  const outcomes: Outcome[] = [];
  for (const name of parsed.names) outcomes.push(await runTarget(name, parsed.opts));
  console.log('\ntarget               execs   corpus  features  seconds  findings');
  for (const o of outcomes) {
    console.log(`${o.target.padEnd(20)} ${String(o.execs).padStart(7)}  ${String(o.corpus).padStart(6)}  ${String(o.features).padStart(8)}  ${String(o.seconds).padStart(7)}  ${o.finding ?? 'none'}`);
  }
  return outcomes.some((o) => o.finding) ? 1 : 0;
}

void main().then((code) => process.exit(code));
