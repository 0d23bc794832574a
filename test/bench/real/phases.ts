import { join } from 'node:path';
import type { ExecutionProvider, GenerationResult } from '../../../server/engine/api';
import { createEngine } from '../../../server/engine/engine';
import { EmbeddingTable } from '../../../server/engine/embeddings';
import { preprocessImage, preprocessOptionsFor } from '../../../server/engine/arch/qwenvl/preprocess';
import { preprocessSiglip } from '../../../server/engine/arch/siglip';
import { assembleAnyres, assembleSingle } from '../../../server/engine/arch/siglip/assemble';
import { readManifest, type ModelManifest } from '../../../server/engine/manifest';
import { open } from '../../../server/engine/attention';
import { OrtModel } from '../../../server/engine/backends/onnx/ortModel';
import { cacheAtDepth } from './pastCache';
import { chatPrompt, tokenizeWithImages } from '../../../server/engine/prompt';
import { range } from '../../../server/engine/rope';
import { TextTokenizer } from '../../../server/engine/tokenizer';
import { median } from './timing';

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

export interface ForwardJob {
  modelDir: string;
  provider: Exclude<ExecutionProvider, 'auto'>;
  threads: number;
  /** Cached positions the forwards attend to (a screenshot prompt's length). */
  past: number;
  repeats: number;
}

interface ForwardTiming {
  forwardMs: number;
  headMs: number;
  cpuMs: number;
}

export interface ForwardResult {
  loadMs: number;
  rssAfterLoad: number;
  past: number;
  /** Median ms of decoder + head for a block of 8 rows and for 1 row; the head alone; process CPU ms (all threads). */
  rows8: ForwardTiming;
  rows1: ForwardTiming;
  /** Verified multi-step decoding: a forward over K states of 8 rows (block-diagonal groups), K = 1, 2, 4, 8. */
  states: { k: number; timing: ForwardTiming }[];
}

/** The K of the states forwards. */
export const STATE_COUNTS = [1, 2, 4, 8];

/**
 * The two forwards block diffusion and one-token decoding run, on the same graphs and the same cache depth: the
 * decoder over `rows` masked positions attending to `past` cached ones (no K/V fetched, as a denoising step), then the
 * head with its in-graph arg-max.
 */
export async function measureForwards(job: ForwardJob): Promise<ForwardResult> {
  const m = readManifest(job.modelDir);
  const t0 = performance.now();
  const emb = new EmbeddingTable(join(job.modelDir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
  const model = await OrtModel.load(job.modelDir, m, job.provider, emb, { threads: job.threads });
  const loadMs = performance.now() - t0;
  const rssAfterLoad = process.memoryUsage().rss;
  try {
    const h = m.text.hiddenSize;
    const maxRows = 8 * Math.max(...STATE_COUNTS);
    const embeds = new Float32Array(maxRows * h);
    for (let r = 0; r < maxRows; r++) emb.copyRow(m.tokens.mask, embeds, r * h);
    const cache = await cacheAtDepth(model, m, job.past, embeds.subarray(0, h));
    // `states` groups of `rows` rows at the same positions, each seeing the cache and itself (one is a plain step).
    const once = async (rows: number, states = 1): Promise<ForwardTiming> => {
      const c = process.cpuUsage();
      const t = performance.now();
      const positions = range(0, states).flatMap(() => range(job.past, job.past + rows));
      const groups = range(0, states).map(() => rows);
      const out = await model.decode(embeds.subarray(0, rows * states * h), positions, open(0, ...groups), cache, { commitRows: 0, outputRows: range(0, rows * states) });
      const th = performance.now();
      await model.head(out!, false);
      const end = performance.now();
      const cpu = process.cpuUsage(c);
      return { forwardMs: end - t, headMs: end - th, cpuMs: (cpu.user + cpu.system) / 1000 };
    };
    await once(8); // warm-up: first-run allocations of both shapes
    await once(1);
    const r8: ForwardTiming[] = [];
    const r1: ForwardTiming[] = [];
    for (let i = 0; i < job.repeats; i++) {
      // Interleaved, so a busy moment on a shared machine hits both alike.
      r8.push(await once(8));
      r1.push(await once(1));
    }
    const med = (xs: ForwardTiming[]): ForwardTiming => ({
      forwardMs: median(xs.map((x) => x.forwardMs)),
      headMs: median(xs.map((x) => x.headMs)),
      cpuMs: median(xs.map((x) => x.cpuMs)),
    });
    // Verified multi-step decoding: K states of 8 rows against one, side by side, alternated within each round.
    for (const k of STATE_COUNTS) await once(8, k);
    const byK = new Map<number, ForwardTiming[]>(STATE_COUNTS.map((k) => [k, []]));
    for (let i = 0; i < job.repeats; i++) for (const k of STATE_COUNTS) byK.get(k)!.push(await once(8, k));
    const states = STATE_COUNTS.map((k) => ({ k, timing: med(byK.get(k)!) }));
    return { loadMs, rssAfterLoad, past: job.past, rows8: med(r8), rows1: med(r1), states };
  } finally {
    await model.release();
  }
}

export interface AskJob {
  modelDir: string;
  provider: ExecutionProvider;
  threads: number;
  question: string;
  /** The screenshot asked about with the full answer, then screenshots whose vision time alone is read. */
  image: string;
  visionOnly: string[];
  maxNewTokens: number;
}

export interface AskPhase {
  promptTokens: number;
  imageTokens: number;
  /** SigLIP only: the 384² views the image tiles into (the tower runs once per view). */
  views?: number;
  visionMs: number;
  prefillMs: number;
  prefillRows: number;
  decodeMs: number;
  totalMs: number;
  /** Process CPU ms of the whole ask, all threads (robust to other load on the machine, unlike wall time). */
  cpuMs: number;
  generatedTokens: number;
  forwards: GenerationResult['stats']['forwards'];
}

export interface AskResult {
  loadMs: number;
  rssAfterLoad: number;
  /** Peak RSS of the process through load and the whole ask. */
  askPeakRss: number;
  ask: AskPhase;
  vision: { image: string; imageTokens: number; views?: number; visionMs: number; cpuMs: number }[];
}

/**
 * The prompt rows an image becomes, per architecture: QwenVL's merged patches; SigLIP's assembled anyres map (tiles
 * unpadded, one newline row per map row, plus the base view), counted by assembling zero features.
 */
async function imageRows(path: string, m: ModelManifest): Promise<{ tokens: number; views?: number }> {
  if (m.architecture === 'diffusionvl_qwenvl') {
    const pre = await preprocessImage({ path }, preprocessOptionsFor(m.image, m.vision));
    return { tokens: (pre.gridThw[0] * pre.gridThw[1] * pre.gridThw[2]) / m.vision.spatialMergeSize ** 2 };
  }
  const pre = await preprocessSiglip({ path }, m, m.image.aspectRatio);
  const H = m.vision.outHiddenSize;
  const side = Math.floor(m.vision.imageSize / m.vision.patchSize);
  const features = new Float32Array(pre.views.length * side * side * H);
  const newline = new Float32Array(H);
  const rows =
    pre.mode === 'pad'
      ? assembleSingle(features, H, newline)
      : assembleAnyres({ features, hidden: H, side, grid: pre.grid, imageSize: [pre.original.width, pre.original.height], maxPatches: pre.maxPatches, newline }).rows;
  return { tokens: rows.length / H, views: pre.views.length };
}

/** What the product does for one screenshot question, through the public engine (worker thread included). */
export async function measureAsk(job: AskJob): Promise<AskResult> {
  const m = readManifest(job.modelDir);
  const t0 = performance.now();
  const engine = await createEngine({ modelDir: job.modelDir, provider: job.provider, threads: job.threads });
  const loadMs = performance.now() - t0;
  const rssAfterLoad = process.memoryUsage().rss;
  const tok = TextTokenizer.fromFile(join(job.modelDir, m.files.tokenizer ?? 'tokenizer.json'));
  const cpuMs = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const c = process.cpuUsage();
    const r = await f();
    const u = process.cpuUsage(c);
    return [r, (u.user + u.system) / 1000];
  };
  try {
    const [r, askCpu] = await cpuMs(() => engine.ask({ images: [{ path: job.image }], question: job.question, options: { maxNewTokens: job.maxNewTokens, strategy: 'static', prefixCache: false } }));
    const askPeakRss = peakRss();
    const textIds = tokenizeWithImages(chatPrompt(job.question, 1), (t) => tok.encode(t), m.tokens.imagePlaceholder);
    const img = await imageRows(job.image, m);
    const promptTokens = textIds.length - 1 + img.tokens;
    const t = r.stats.timings;
    const ask: AskPhase = {
      promptTokens,
      imageTokens: img.tokens,
      views: img.views,
      visionMs: t.visionMs,
      prefillMs: t.prefillMs,
      prefillRows: Math.floor(promptTokens / m.blockSize) * m.blockSize,
      decodeMs: t.decodeMs,
      totalMs: t.totalMs,
      cpuMs: askCpu,
      generatedTokens: r.stats.generatedTokens,
      forwards: r.stats.forwards,
    };
    const vision: AskResult['vision'] = [];
    for (const image of job.visionOnly) {
      // A one-block answer: vision is read from the stats; the CPU figure covers the whole (short) ask.
      const [v, cpu] = await cpuMs(() => engine.ask({ images: [{ path: image }], question: job.question, options: { maxNewTokens: m.blockSize, prefixCache: false } }));
      const rows = await imageRows(image, m);
      vision.push({ image, imageTokens: rows.tokens, views: rows.views, visionMs: v.stats.timings.visionMs, cpuMs: cpu });
    }
    return { loadMs, rssAfterLoad, askPeakRss, ask, vision };
  } finally {
    await engine.dispose();
  }
}
