/**
 * bench:real's llama.cpp column: the same checkpoint converted with `--decoder gguf --precision q4_0`, the same
 * screenshot question and forwards through the llama.cpp decoder backend, and llama.cpp's own llama-bench on the same
 * GGUF and libraries — printed beside ONNX Runtime's figures with the issue's goals.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { converterKey, realBenchDir } from './cache';
import type { ChildJob } from './child';
import { ensureLlamaBench, runLlamaBench, type LlamaBenchRow } from './llamaBench';
import type { AskJob, AskResult, ForwardResult } from './phases';

export interface LlamaPhases {
  modelDir: string;
  convert: { seconds: number; peakRss: number; at: string };
  ask: AskResult;
  forwards: ForwardResult;
  /** llama-bench: pp1 and pp8 at the prompt's depth, and the prompt rate over the prefill's rows from empty. */
  bench: { pp1: LlamaBenchRow; pp8: LlamaBenchRow; prompt: LlamaBenchRow } | { error: string };
}

type Run = <T>(job: ChildJob, log: (s: string) => void) => Promise<T>;

export async function measureLlama(
  run: Run,
  o: { ckpt: string; label: string; threads: number; repeats: number; askJob: Omit<AskJob, 'modelDir'>; past: number; prefillRows: number },
  log: (s: string) => void,
): Promise<LlamaPhases> {
  const modelDir = join(realBenchDir, `model-${o.label}-gguf-q4_0-${converterKey()}`);
  const record = `${modelDir}.convert.json`;
  let convert: LlamaPhases['convert'];
  if (existsSync(join(modelDir, 'manifest.json')) && existsSync(record)) convert = JSON.parse(readFileSync(record, 'utf8')) as LlamaPhases['convert'];
  else {
    log('converting to a Q4_0 GGUF decoder (llama.cpp) …');
    const r = await run<{ seconds: number; peakRss: number }>({ kind: 'convert', checkpoint: o.ckpt, out: modelDir, precision: 'int4', decoder: 'gguf', ggufType: 'q4_0' }, log);
    convert = { ...r, at: new Date().toISOString() };
    writeFileSync(record, JSON.stringify(convert));
  }
  log('llama.cpp: screenshot question (128 tokens) …');
  const ask = await run<AskResult>({ kind: 'ask', ...o.askJob, modelDir, backend: 'llama.cpp' }, log);
  log('llama.cpp: 8-row and 1-row forwards …');
  const forwards = await run<ForwardResult>({ kind: 'forwards', modelDir, backend: 'llama.cpp', provider: 'cpu', threads: o.threads, past: o.past, repeats: o.repeats }, log);
  let bench: LlamaPhases['bench'];
  try {
    const bin = ensureLlamaBench(log);
    const manifest = JSON.parse(readFileSync(join(modelDir, 'manifest.json'), 'utf8')) as { decoders: { gguf: { file: string } } };
    const gguf = join(modelDir, manifest.decoders.gguf.file);
    log('llama-bench …');
    const [pp1, pp8] = runLlamaBench(bin, gguf, { rows: [1, 8], depth: o.past, threads: o.threads, repeats: o.repeats });
    const [prompt] = runLlamaBench(bin, gguf, { rows: [o.prefillRows], depth: 0, threads: o.threads, repeats: Math.min(3, o.repeats) });
    bench = { pp1, pp8, prompt };
  } catch (err) {
    bench = { error: (err as Error).message.split('\n')[0] };
  }
  return { modelDir, convert, ask, forwards, bench };
}

type Line = (name: string, value: string, detail?: string) => void;
const ms = (x: number) => `${x.toFixed(0)} ms`;
const s1 = (x: number) => `${(x / 1000).toFixed(1)} s`;
const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

/** The side-by-side table and each goal of the llama.cpp backend against ONNX Runtime and llama-bench. */
export function printLlama(l: LlamaPhases, onnxAsk: AskResult, onnxFwd: ForwardResult, line: Line): void {
  const a = l.ask.ask;
  const o = onnxAsk.ask;
  const f = l.forwards;
  console.log(`\nllama.cpp decoder backend (Q4_0 GGUF of the same checkpoint; vision on ONNX Runtime, int4) beside ONNX Runtime (int4)`);
  line('conversion (gguf q4_0)', `${l.convert.seconds.toFixed(0)} s`, `peak RSS ${gib(l.convert.peakRss)} (converted ${l.convert.at})`);
  const pair = (name: string, ours: number, theirs: number, fmt: (x: number) => string, detail = '') =>
    line(name, fmt(ours), `ONNX Runtime ${fmt(theirs)} (${(theirs / ours).toFixed(2)}× ${theirs >= ours ? 'slower' : 'faster'})${detail ? `; ${detail}` : ''}`);
  pair('vision 640x480', a.visionMs, o.visionMs, ms);
  pair('prefill', a.prefillMs, o.prefillMs, ms, `${((a.prefillRows * 1000) / a.prefillMs).toFixed(0)} tokens/s`);
  pair('8-row forward (8 logits)', f.rows8.forwardMs, onnxFwd.rows8.forwardMs, ms, `head ${ms(f.rows8.headMs)}`);
  if (f.causal8Last) line('8-row causal, last logits', ms(f.causal8Last.forwardMs), "llama-bench's pp8 shape through our calls");
  pair('1-row forward', f.rows1.forwardMs, onnxFwd.rows1.forwardMs, ms);
  pair('decoding, 128 tokens', a.decodeMs, o.decodeMs, s1, `${a.forwards.denoise + a.forwards.commit + (a.forwards.fusedCommits ?? 0)} forwards`);
  pair('screenshot question', a.totalMs, o.totalMs, s1);
  line('peak RSS of the ask', gib(l.ask.askPeakRss), `ONNX Runtime ${gib(onnxAsk.askPeakRss)}`);
  for (const s of f.states) line(`  K = ${s.k} states (${8 * s.k} rows)`, ms(s.timing.forwardMs), `c(K) = ${(s.timing.forwardMs / f.states[0].timing.forwardMs).toFixed(2)}`);

  const implied = (tokensPerForward: number) => a.visionMs + a.prefillMs + Math.ceil(128 / tokensPerForward) * f.rows8.forwardMs;
  console.log('goals (issue: llama.cpp decoder backend)');
  if ('error' in l.bench) line('llama-bench', 'n/a', l.bench.error);
  else {
    const b = l.bench;
    const head7 = f.causal8Last ? f.rows8.forwardMs - f.causal8Last.forwardMs : 0;
    line('  llama-bench pp8 / pp1', `${ms(b.pp8.ms)} / ${ms(b.pp1.ms)}`, `depth ${b.pp8.depth}; prompt ${b.prompt.rows} rows at ${b.prompt.tokensPerSecond.toFixed(0)} tokens/s`);
    const g8 = f.rows8.forwardMs / (b.pp8.ms + head7);
    line('  8-row ≤ 1.1 × (pp8 + head)', `${g8.toFixed(2)}×`, `${verdict(g8 <= 1.1)} (head on 7 more rows ${ms(head7)}, measured as 8 logits − last-row logits)`);
    const g1 = f.rows1.forwardMs / b.pp1.ms;
    line('  1-row ≤ 1.1 × pp1', `${g1.toFixed(2)}×`, verdict(g1 <= 1.1));
    const gp = (a.prefillRows * 1000) / a.prefillMs / b.prompt.tokensPerSecond;
    line('  prefill ≥ 0.9 × prompt rate', `${gp.toFixed(2)}×`, verdict(gp >= 0.9));
  }
  line('  question ≤ 45 s', s1(a.totalMs), verdict(a.totalMs <= 45_000));
  line('  at 2 tokens/forward ≤ 30 s', s1(implied(2)), `${verdict(implied(2) <= 30_000)} (vision + prefill + 64 × the 8-row forward)`);
  line('  at 3 tokens/forward', s1(implied(3)), 'vision + prefill + 43 × the 8-row forward');
  line('  peak RSS ≤ 3 GB', gib(l.ask.askPeakRss), verdict(l.ask.askPeakRss <= 3e9));
}
