/**
 * `node out/test/bench/real/levers.js [--shape 3b] [--threads N] [--repeats N]`: the int4 layouts and thread
 * settings MatMulNBits can run with, timed side by side on the shape's two largest linears (the MLP's fused
 * gate|up and its down projection) at the row counts the phases use. The converter's `INT4` is chosen from this.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Int4Config } from '../../../server/converter/layers';
import { realBenchDir } from './cache';
import type { MicroResult } from './microbench';
import { REAL_SHAPES } from './shapes';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);
const shape = REAL_SHAPES[opt('shape', '3b')];
const threads = Number(opt('threads', String(availableParallelism())));
const repeats = Number(opt('repeats', '5'));
const rows = opt('rows', '1,8,512').split(',').map(Number);

function micro(n: number, k: number, int4: Int4Config, config?: Record<string, string>, t = threads): Promise<MicroResult> {
  const job = { kind: 'micro', dir: join(realBenchDir, 'levers'), n, k, rows, threads: t, repeats, int4, config };
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, [join(__dirname, 'child.js'), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => (code === 0 ? ok(JSON.parse(out.trim().split('\n').pop()!) as MicroResult) : fail(new Error(`micro exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const H = shape.hiddenSize;
  const I = shape.intermediateSize;
  const layouts: Int4Config[] = [];
  for (const blockSize of [32, 64, 128]) for (const symmetric of [false, true]) layouts.push({ blockSize, symmetric, accuracyLevel: 4 });
  layouts.push({ blockSize: 32, symmetric: false, accuracyLevel: 0 }, { blockSize: 32, symmetric: false, accuracyLevel: 1 });
  const name = (l: Int4Config) => `block ${l.blockSize} ${l.symmetric ? 'sym ' : 'asym'} acc ${l.accuracyLevel}`;
  console.log(`${shape.release} linears, ${threads} threads, median of ${repeats}; ms per run (M = ${rows.join(', ')})`);
  for (const [n, k, what] of [[2 * I, H, 'gate|up'], [H, I, 'down']] as const) {
    console.log(`\n${what} [${n}×${k}]`);
    for (const l of layouts) {
      const r = await micro(n, k, l);
      console.log(`  ${name(l).padEnd(24)} ${r.byRows.map((x) => `${x.ms.toFixed(2).padStart(8)}`).join(' ')}   ${(r.weightBytes / 2 ** 20).toFixed(1)} MiB`);
    }
  }
  const base: Int4Config = { blockSize: 32, symmetric: false, accuracyLevel: 4 };
  console.log(`\nthread settings, gate|up [${2 * I}×${H}], ${name(base)}`);
  const settings: [string, number, Record<string, string> | undefined][] = [
    ['1 thread', 1, undefined],
    [`${threads} threads, spinning (default)`, threads, undefined],
    [`${threads} threads, no spinning`, threads, { 'session.intra_op.allow_spinning': '0' }],
  ];
  for (const [label, t, config] of settings) {
    const r = await micro(2 * I, H, base, config, t);
    console.log(`  ${label.padEnd(32)} ${r.byRows.map((x) => `${x.ms.toFixed(2).padStart(8)}`).join(' ')}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
