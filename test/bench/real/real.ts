/**
 * `npm run bench:real [-- --shape 3b|7b|7b-siglip] [--layers N] [--precision int4|fp16|fp32] [--provider P] [--threads N]
 *  [--repeats N] [--json]`
 *
 * The product at a released model's real widths, on this machine: generates a checkpoint with the release's
 * dimensions and layout (bf16 shards, a cheap deterministic fill; all layers unless --layers), converts it and
 * measures every phase of a screenshot question side by side in one run. Generated files are cached under
 * .cache/bench-real (a rerun skips generation, and conversion unless the converter changed).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import type { ExecutionProvider } from '../../../server/engine/api';
import { readManifest, type ModelManifest, type Precision } from '../../../server/engine/manifest';
import { DEFAULT_MODEL_ACCEPTANCE, expectedSteps } from '../../../server/engine/verifySteps';
import { checkpointDir, converterKey, ensureCheckpoint, realBenchDir } from './cache';
import type { ChildJob } from './child';
import { decoderFlopsPerRow, headFlopsPerRow, visionFlops } from './flops';
import type { MicroResult } from './microbench';
import type { AskResult, ForwardResult } from './phases';
import { ensureScreenshot } from './screenshots';
import { REAL_SHAPES } from './shapes';

interface Args {
  shape: string;
  layers?: number;
  precision: Precision;
  provider: ExecutionProvider;
  threads: number;
  repeats: number;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return undefined;
    if (i + 1 >= argv.length) throw new Error(`--${name} needs a value`);
    return argv[i + 1];
  };
  const int = (name: string): number | undefined => {
    const v = value(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
    return n;
  };
  const shape = value('shape') ?? '3b';
  if (!REAL_SHAPES[shape]) throw new Error(`--shape ${shape}: one of ${Object.keys(REAL_SHAPES).join(', ')}`);
  const precision = (value('precision') ?? 'int4') as Precision;
  if (!['int4', 'fp16', 'fp32'].includes(precision)) throw new Error(`--precision ${precision}: int4, fp16 or fp32`);
  return {
    shape,
    layers: int('layers'),
    precision,
    provider: (value('provider') ?? 'cpu') as ExecutionProvider,
    threads: int('threads') ?? availableParallelism(),
    repeats: int('repeats') ?? 5,
    json: argv.includes('--json'),
  };
}

const GiB = 1024 ** 3;
const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;
const ms = (x: number) => `${x.toFixed(0)} ms`;
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

/** Runs one measuring child and returns its JSON result. */
function child<T>(job: ChildJob, log: (s: string) => void): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(process.execPath, [join(__dirname, 'child.js'), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${job.kind} failed (exit ${code}):\n${err.trim()}`));
      if (err.trim()) log(err.trim());
      resolvePromise(JSON.parse(out.trim().split('\n').pop() ?? 'null') as T);
    });
  });
}

interface ConvertRecord {
  seconds: number;
  peakRss: number;
  at: string;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string) => {
    if (!args.json) console.log(s);
    else console.error(s);
  };
  const shape = REAL_SHAPES[args.shape];
  const cut = shape.checkpoint(args.layers);
  const textLayers = cut.textLayers;
  const label = `${args.shape}-${textLayers}L`;
  const t0 = Date.now();
  const loadBefore = loadavg()[0];

  // 1. Checkpoint (cached).
  const ckpt = checkpointDir(label, cut.options);
  log(`checkpoint ${shape.release} shape, ${textLayers}/${shape.textLayers} text layers, ${cut.visionBlocks}/${shape.visionBlocks} vision blocks, bf16 …`);
  const written = await ensureCheckpoint(ckpt, cut.write);

  // 2. Conversion (in a child for its own peak RSS; cached while the converter is unchanged).
  const modelDir = join(realBenchDir, `model-${label}-${args.precision}-${converterKey()}`);
  const record = join(`${modelDir}.convert.json`);
  let conv: ConvertRecord;
  if (existsSync(join(modelDir, 'manifest.json')) && existsSync(record)) {
    conv = JSON.parse(readFileSync(record, 'utf8')) as ConvertRecord;
  } else {
    log(`converting to ${args.precision} …`);
    const r = await child<{ seconds: number; peakRss: number }>({ kind: 'convert', checkpoint: ckpt, out: modelDir, precision: args.precision }, log);
    conv = { ...r, at: new Date().toISOString() };
    writeFileSync(record, JSON.stringify(conv));
  }
  const m: ModelManifest = readManifest(modelDir);

  // 3. The int4 rate this machine reaches on one linear of this shape (the MLP's fused gate|up).
  log('micro-benchmark …');
  const micro = await child<MicroResult>(
    { kind: 'micro', dir: join(realBenchDir, `micro-${converterKey()}`), n: 2 * m.text.intermediateSize, k: m.text.hiddenSize, rows: [1, 8, 512], threads: args.threads, repeats: args.repeats },
    log,
  );
  const rateAt = (rows: number) => micro.byRows.reduce((best, r) => (Math.abs(Math.log(r.m / rows)) < Math.abs(Math.log(best.m / rows)) ? r : best));

  // 4. Screenshots, then the whole ask (its own process: its peak RSS is the product's), then the forwards.
  const shots = join(realBenchDir, 'screenshots');
  const small = await ensureScreenshot(shots, 640, 480);
  const others = await Promise.all(shape.visionImages.map(([w, h]) => ensureScreenshot(shots, w, h)));
  log('screenshot question (128 tokens) …');
  const askJob = { modelDir, provider: args.provider, threads: args.threads, question: 'Describe this screenshot in detail.', image: small, visionOnly: others, maxNewTokens: 128 };
  const ask = await child<AskResult>({ kind: 'ask', ...askJob }, log);
  log('8-row and 1-row forwards …');
  const provider = args.provider === 'auto' ? 'cpu' : args.provider;
  const fwd = await child<ForwardResult>({ kind: 'forwards', modelDir, provider, threads: args.threads, past: ask.ask.promptTokens, repeats: args.repeats }, log);

  // Derived figures.
  const a = ask.ask;
  const decForwards = a.forwards.denoise + a.forwards.commit;
  const perForwardMs = a.decodeMs / Math.max(1, decForwards);
  const tokS = a.generatedTokens / (a.decodeMs / 1000);
  const implied = (k: number) => (k * 1000) / fwd.rows8.forwardMs;
  const dec = decoderFlopsPerRow(m);
  const head = headFlopsPerRow(m);
  // The vision FLOP model is QwenVL's tower; a SigLIP tower gets none rather than a wrong one.
  const frac = {
    vision: m.architecture === 'diffusionvl_qwenvl' ? visionFlops(m, a.imageTokens) / (a.visionMs * 1e6) / rateAt(512).gflops : null,
    prefill: (dec * a.prefillRows) / (a.prefillMs * 1e6) / rateAt(512).gflops,
    rows8: ((dec + head) * 8) / (fwd.rows8.forwardMs * 1e6) / rateAt(8).gflops,
    rows1: (dec + head) / (fwd.rows1.forwardMs * 1e6) / rateAt(1).gflops,
  };
  const result = {
    // The 1-minute load average at the start and the end: other work on a shared machine slows every phase.
    machine: { cpus: availableParallelism(), threads: args.threads, provider: args.provider, node: process.version, loadAverage: [loadBefore, loadavg()[0]] },
    shape: args.shape,
    release: shape.release,
    textLayers,
    visionBlocks: cut.visionBlocks,
    precision: args.precision,
    checkpoint: { bytes: written.bytes, generatedSeconds: written.seconds },
    convert: conv,
    load: { ms: fwd.loadMs, rss: fwd.rssAfterLoad, engineMs: ask.loadMs, engineRss: ask.rssAfterLoad },
    ask: { ...a, peakRss: ask.askPeakRss, perForwardMs, tokensPerSecond: tokS },
    vision: [
      { image: '640x480', imageTokens: a.imageTokens, views: a.views, visionMs: a.visionMs },
      ...ask.vision.map((v, i) => ({ ...v, image: shape.visionImages[i].join('x') })),
    ],
    forwards: { past: fwd.past, rows8: fwd.rows8, rows1: fwd.rows1, ratio: fwd.rows8.forwardMs / fwd.rows1.forwardMs },
    verifySteps: verifyFigures(fwd),
    decode: { staticTokensPerSecond: tokS, impliedAt2: implied(2), impliedAt3: implied(3) },
    micro,
    fractionOfMicroRate: frac,
    seconds: (Date.now() - t0) / 1000,
  };
  if (args.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }

  const line = (name: string, value: string, detail = '') => console.log(`${name.padEnd(30)} ${value.padStart(12)}   ${detail}`);
  console.log(`\n${shape.release} shape, ${args.precision}, ${textLayers} text layers / ${cut.visionBlocks} vision blocks; ${args.provider}, ${args.threads} threads on ${availableParallelism()} CPUs`);
  console.log(`load average ${result.machine.loadAverage.map((x) => x.toFixed(1)).join(' → ')} (other processes on this machine during the run)`);
  line('checkpoint (bf16)', gib(written.bytes), written.seconds === null ? 'cached' : `generated in ${written.seconds.toFixed(0)} s`);
  line('conversion', `${conv.seconds.toFixed(0)} s`, `peak RSS ${gib(conv.peakRss)}${existsSync(record) && conv.at ? ` (converted ${conv.at})` : ''}`);
  line('load (sessions)', ms(fwd.loadMs), `RSS ${gib(fwd.rssAfterLoad)}; engine (worker) ${ms(ask.loadMs)}, RSS ${gib(ask.rssAfterLoad)}`);
  for (const v of result.vision) line(`vision ${v.image}`, ms(v.visionMs), `${v.views === undefined ? '' : `${v.views} views, `}${v.imageTokens} image tokens`);
  line('prefill', ms(a.prefillMs), `${a.prefillRows} of ${a.promptTokens} prompt tokens (${((a.prefillRows * 1000) / a.prefillMs).toFixed(0)} tokens/s)`);
  line('8-row forward', ms(fwd.rows8.forwardMs), `decoder + head (head ${ms(fwd.rows8.headMs)}), ${fwd.past} cached positions; ${ms(fwd.rows8.cpuMs)} process CPU`);
  line('1-row forward', ms(fwd.rows1.forwardMs), `decoder + head (head ${ms(fwd.rows1.headMs)}); ${ms(fwd.rows1.cpuMs)} process CPU`);
  line('8-row / 1-row', `${result.forwards.ratio.toFixed(2)}×`, 'block diffusion pays this per forward over one-token decoding');
  console.log(`verified multi-step decoding: a forward over K states of 8 rows against one (acceptance ${DEFAULT_MODEL_ACCEPTANCE} assumed, the default model's)`);
  for (const v of result.verifySteps) {
    line(`  K = ${v.k} (${8 * v.k} rows)`, ms(v.forwardMs), `c(K) = ${v.cost.toFixed(2)}; ${v.stepsPerPass.toFixed(2)} steps per forward → ${v.speedup.toFixed(2)}× the steps per second of K = 1`);
  }
  line('decode, static remasking', `${tokS.toFixed(2)} tok/s`, `${a.generatedTokens} tokens in ${(a.decodeMs / 1000).toFixed(1)} s, ${decForwards} forwards (${ms(perForwardMs)} each)`);
  line('  implied at 2 tokens/forward', `${implied(2).toFixed(2)} tok/s`, 'from the 8-row forward');
  line('  implied at 3 tokens/forward', `${implied(3).toFixed(2)} tok/s`, `(1-row decoding: ${(1000 / fwd.rows1.forwardMs).toFixed(2)} tok/s)`);
  line('screenshot question, 128 tok', `${(a.totalMs / 1000).toFixed(1)} s`, `vision + prefill ${((a.visionMs + a.prefillMs) / 1000).toFixed(1)} s, decoding ${(a.decodeMs / 1000).toFixed(1)} s; ${(a.cpuMs / 1000).toFixed(1)} s process CPU`);
  line('peak RSS of the ask', gib(ask.askPeakRss), 'load + vision + prefill + 128 tokens, one process');
  console.log(`\nMatMulNBits micro-benchmark: one linear [${micro.n}×${micro.k}] as the converter writes it (${(micro.weightBytes / 2 ** 20).toFixed(0)} MiB of weights)`);
  for (const r of micro.byRows) line(`  M = ${r.m}`, `${r.gflops.toFixed(1)} GFLOP/s`, `${r.ms.toFixed(2)} ms${r.m === 1 ? `, ${(micro.weightBytes / (r.ms * 1e6)).toFixed(1)} GB/s of weights` : ''}`);
  console.log('fraction of that rate each phase reaches (linear layers only):');
  if (frac.vision === null) line('  vision', 'skipped', 'no FLOP model for the SigLIP tower + mlp2x_gelu projector (QwenVL only)');
  else line('  vision (M ≈ patches)', pct(frac.vision), `vs M = ${rateAt(512).m}`);
  line('  prefill', pct(frac.prefill), `vs M = ${rateAt(512).m}`);
  line('  8-row forward', pct(frac.rows8), 'vs M = 8');
  line('  1-row forward', pct(frac.rows1), 'vs M = 1');
  console.log(`\ntotal ${result.seconds.toFixed(0)} s`);
}

/** c(K) per K and what it implies at the default model's acceptance rate (see server/engine/verifySteps.ts). */
function verifyFigures(fwd: ForwardResult): { k: number; forwardMs: number; cost: number; stepsPerPass: number; speedup: number }[] {
  const one = fwd.states.find((s) => s.k === 1)!.timing.forwardMs;
  return fwd.states.map((s) => {
    const cost = s.timing.forwardMs / one;
    const stepsPerPass = expectedSteps(s.k, DEFAULT_MODEL_ACCEPTANCE);
    return { k: s.k, forwardMs: s.timing.forwardMs, cost, stepsPerPass, speedup: stepsPerPass / cost };
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
