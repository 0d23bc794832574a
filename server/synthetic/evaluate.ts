import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DecoderBackend, Engine, EngineInfo, GenerationOptions, RemaskingStrategy } from '../engine/api';
import { createEngine } from '../engine/engine';
import { MANIFEST_FILE, readManifest } from '../engine/manifest';
import { ArDecoder } from './arDecode';
import { drawItems, isCorrect, type SyntheticItem } from './generator';
import { renderPng } from './render';

/**
 * Accuracy and decoding speed of the synthetic model through the TypeScript engine, on K fresh items drawn with
 * any seed (split "eval", never a training key): the AR baseline (greedy, one token per forward) and the translated
 * block-diffusion model with static remasking and dynamic remasking at several thresholds.
 */

export interface EvalConfig {
  name: string;
  kind: 'ar' | 'diffusion';
  strategy?: RemaskingStrategy;
  threshold?: number;
  /** Denoising states per forward (verified multi-step decoding); absent: the engine's default. */
  verifySteps?: number;
}

export interface EvalRow {
  name: string;
  kind: 'ar' | 'diffusion';
  strategy?: string;
  threshold?: number;
  blockSize: number;
  steps?: number;
  count: number;
  correct: number;
  accuracy: number;
  perType: Record<string, { correct: number; count: number; accuracy: number }>;
  /** Decoded positions (answer, EOS and the EOS fill of its block) per forward pass, all items pooled. */
  tokensPerForward: number;
  /** Answer tokens up to and including the first EOS per forward pass: counts no EOS padding. */
  answerTokensPerForward: number;
  forwardsPerItem: number;
  /** Mean wall time per question, vision encoder included. */
  msPerItem: number;
  /** Verified multi-step decoding (`--verify-steps`): K, and its drafts accepted per question. */
  verifySteps?: number;
  draftsAcceptedPerItem?: number;
  /** Drafts accepted per draft the real steps checked (see ForwardCounts.draftsChecked). */
  acceptance?: number;
  /** Questions whose output ids equal those of the first K listed, same remasking (that K's own row: all). */
  identicalToFirstK?: number;
  /** Each question's answer, in the order drawn: compare runs question by question. */
  answers: EvalAnswer[];
}

export interface EvalAnswer {
  text: string;
  correct: boolean;
  /** Generated ids (diffusion: the whole generation, EOS fill included; AR: up to its stop). */
  ids: number[];
}

export interface EvalReport {
  seed: number;
  count: number;
  modelDir: string;
  arModelDir?: string;
  maxNewTokens: number;
  /** The decoder backend the diffusion rows ran on, and why (absent when only the AR baseline ran). */
  backend?: EngineInfo['backend'];
  backendReason?: string;
  rows: EvalRow[];
}

export interface EvalOptions {
  modelDir: string;
  arModelDir?: string;
  seed: number;
  count: number;
  thresholds?: number[];
  maxNewTokens?: number;
  threads?: number;
  /** The diffusion model's decoder backend (default: the engine's, auto). */
  backend?: DecoderBackend;
  /** Run each diffusion configuration at each of these K (the first is the reference others are compared to). */
  verifySteps?: number[];
  onProgress?: (line: string) => void;
}

export const DEFAULT_THRESHOLDS = [0.95, 0.9, 0.8, 0.7, 0.5];

/** The AR baseline shipped next to the default model, when present. */
export function arBaselineDir(modelDir: string): string | undefined {
  const dir = join(modelDir, 'ar');
  return existsSync(join(dir, MANIFEST_FILE)) ? dir : undefined;
}

export async function evaluateSynthetic(o: EvalOptions): Promise<EvalReport> {
  const maxNewTokens = o.maxNewTokens ?? 16;
  const items = drawItems(o.seed, 'eval', o.count);
  const pngs = await Promise.all(items.map((it) => renderPng(it.svg)));
  const blockSize = readManifest(o.modelDir).blockSize;
  const configs: EvalConfig[] = [];
  if (o.arModelDir) configs.push({ name: 'AR (block size 1)', kind: 'ar' });
  const diffusion: EvalConfig[] = [{ name: 'diffusion, static', kind: 'diffusion', strategy: 'static' }];
  for (const t of o.thresholds ?? DEFAULT_THRESHOLDS) diffusion.push({ name: `diffusion, dynamic ${t}`, kind: 'diffusion', strategy: 'dynamic', threshold: t });
  for (const cfg of diffusion) {
    if (!o.verifySteps) configs.push(cfg);
    else for (const k of o.verifySteps) configs.push({ ...cfg, name: `${cfg.name}, K=${k}`, verifySteps: k });
  }
  // Output ids of the first K's run of each remasking configuration, per question.
  const reference = new Map<string, number[][]>();

  const rows: EvalRow[] = [];
  let engine: Engine | undefined;
  try {
    for (const cfg of configs) {
      const acc = new Tally(items);
      if (cfg.kind === 'ar') {
        const ar = await ArDecoder.load(o.arModelDir!, o.threads);
        try {
          for (const [i, it] of items.entries()) {
            const r = await ar.ask(pngs[i], it.question, maxNewTokens);
            acc.add(it, r.text, r.ids, r.ids.length, r.ids.length, r.forwards, r.totalMs);
          }
        } finally {
          await ar.dispose();
        }
        rows.push(acc.row(cfg, 1));
      } else {
        engine ??= await createEngine({ modelDir: o.modelDir, provider: 'cpu', threads: o.threads, backend: o.backend });
        const options: GenerationOptions = { maxNewTokens, steps: blockSize, strategy: cfg.strategy, threshold: cfg.threshold, verifySteps: cfg.verifySteps };
        const key = `${cfg.strategy} ${cfg.threshold}`;
        const ref = reference.get(key);
        const outputs: number[][] = [];
        let identical = 0;
        let drafts = 0;
        let checked = 0;
        for (const [i, it] of items.entries()) {
          const r = await engine.ask({ images: [{ bytes: pngs[i] }], question: it.question, options });
          const f = r.stats.forwards;
          const eos = r.outputIds.indexOf(readEos(o.modelDir));
          const answerTokens = eos < 0 ? r.stats.generatedTokens : eos + 1;
          acc.add(it, r.text, r.outputIds, r.stats.generatedTokens, answerTokens, f.prefill + f.denoise + f.commit, r.stats.timings.totalMs);
          outputs.push(r.outputIds);
          if (!ref || r.outputIds.every((id, j) => id === ref[i][j])) identical++;
          drafts += f.draftsAccepted ?? 0;
          checked += f.draftsChecked ?? 0;
        }
        if (!ref) reference.set(key, outputs);
        const verify = cfg.verifySteps === undefined ? {} : { verifySteps: cfg.verifySteps, draftsAcceptedPerItem: drafts / items.length, acceptance: checked ? drafts / checked : undefined, identicalToFirstK: identical };
        rows.push({ ...acc.row(cfg, blockSize), steps: blockSize, ...verify });
      }
      o.onProgress?.(`${cfg.name}: ${(rows[rows.length - 1].accuracy * 100).toFixed(1)} %`);
    }
    const backend = engine ? { backend: engine.info.backend, backendReason: engine.info.backendReason } : {};
    return { seed: o.seed, count: o.count, modelDir: o.modelDir, arModelDir: o.arModelDir, maxNewTokens, ...backend, rows };
  } finally {
    await engine?.dispose();
  }
}

const eosCache = new Map<string, number>();
function readEos(dir: string): number {
  let id = eosCache.get(dir);
  if (id === undefined) eosCache.set(dir, (id = readManifest(dir).tokens.eos));
  return id;
}

class Tally {
  private correct = 0;
  private tokens = 0;
  private answerTokens = 0;
  private forwards = 0;
  private ms = 0;
  private perType = new Map<string, { correct: number; count: number }>();
  private answers: EvalAnswer[] = [];

  constructor(private items: SyntheticItem[]) {}

  /** One question's result: its answer and ids, decoded positions (answer tokens up to EOS), forwards and time. */
  add(item: SyntheticItem, text: string, ids: number[], tokens: number, answerTokens: number, forwards: number, ms: number): void {
    const ok = isCorrect(text, item.answer);
    this.answers.push({ text, correct: ok, ids: [...ids] });
    this.correct += ok ? 1 : 0;
    this.tokens += tokens;
    this.answerTokens += answerTokens;
    this.forwards += forwards;
    this.ms += ms;
    const t = this.perType.get(item.type) ?? { correct: 0, count: 0 };
    t.correct += ok ? 1 : 0;
    t.count++;
    this.perType.set(item.type, t);
  }

  row(cfg: EvalConfig, blockSize: number): EvalRow {
    const n = this.items.length;
    const perType: EvalRow['perType'] = {};
    for (const [k, v] of [...this.perType.entries()].sort()) perType[k] = { ...v, accuracy: v.correct / v.count };
    return {
      name: cfg.name,
      kind: cfg.kind,
      strategy: cfg.strategy,
      threshold: cfg.threshold,
      blockSize,
      count: n,
      correct: this.correct,
      accuracy: this.correct / n,
      perType,
      tokensPerForward: this.tokens / Math.max(1, this.forwards),
      answerTokensPerForward: this.answerTokens / Math.max(1, this.forwards),
      forwardsPerItem: this.forwards / n,
      msPerItem: this.ms / n,
      answers: this.answers,
    };
  }
}

/** Markdown table of a report (the README's results table). */
export function reportTable(r: EvalReport): string {
  const lines = [
    '| decoder | accuracy | tokens / forward | answer tokens / forward | forwards / question | ms / question |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  if (r.rows.some((row) => row.verifySteps !== undefined)) return verifyTable(r);
  for (const row of r.rows) {
    lines.push(
      `| ${row.name} | ${(row.accuracy * 100).toFixed(1)} % | ${row.tokensPerForward.toFixed(2)} | ${row.answerTokensPerForward.toFixed(2)} | ${row.forwardsPerItem.toFixed(2)} | ${row.msPerItem.toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

/** Markdown table of a `--verify-steps` report: forwards per answer token and agreement with the first K. */
function verifyTable(r: EvalReport): string {
  const lines = [
    '| decoder | K | accuracy | forwards / answer token | forwards / question | drafts accepted / question | acceptance | ids identical to the first K |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of r.rows) {
    if (row.verifySteps === undefined) continue;
    lines.push(
      `| ${row.name.replace(/, K=\d+$/, '')} | ${row.verifySteps} | ${(row.accuracy * 100).toFixed(1)} % | ${(1 / row.answerTokensPerForward).toFixed(3)} | ${row.forwardsPerItem.toFixed(2)} | ${row.draftsAcceptedPerItem!.toFixed(2)} | ${row.acceptance === undefined ? '–' : row.acceptance.toFixed(2)} | ${row.identicalToFirstK} / ${row.count} |`,
    );
  }
  return lines.join('\n');
}
