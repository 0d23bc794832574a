import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  CancelledError,
  DEFAULT_PROVIDER,
  DiffusionVLError,
  InputError,
  MASK_TEXT,
  type AskRequest,
  type EngineInfo,
  type EngineOptions,
  type GenerateIdsRequest,
  type GenerationEvent,
  type GenerationResult,
  type ImageInput,
} from './api';
import { runBlockDiffusion } from './blockDiffusion';
import { EmbeddingTable } from './embeddings';
import { MAX_IMAGE_BYTES, preprocessImage, preprocessOptionsFor } from './image';
import { readImageBytes } from './image/decode';
import type { KvCache } from './kvCache';
import { LruCache } from './lruCache';
import { readManifest, type ModelManifest } from './manifest';
import { resolveOptions } from './options';
import { OrtModel } from './ortModel';
import { prefixBlockDigests, sharedPrefix } from './prefixKeys';
import { chatPrompt, countPlaceholders, tokenizeWithImages } from './prompt';
import { withFallback } from './providers';
import { Xoshiro128 } from './rng';
import { blockLayout } from './schedule';
import { TextTokenizer } from './tokenizer';
import { permuteUnits, visionLayout, visionRotary, windowMask } from './visionLayout';

export interface RunContext {
  /** True once the caller cancelled this run. */
  cancelled(): boolean;
  /** Step events are wanted (each costs a decode). */
  steps: boolean;
  emit(event: GenerationEvent): void;
}

/**
 * The engine proper, living in the worker thread: sessions, tokenizer, embedding rows, the KV cache kept across runs
 * for prompt-prefix reuse and the per-image feature cache. One run at a time.
 */
export class EngineCore {
  private cache: KvCache;
  /** Digests of the prompt blocks whose K/V are at the start of `cache`. */
  private cachedPrefix: string[] = [];
  private visionCache = new LruCache<string, Float32Array>(8);
  private fileToPixelKey = new LruCache<string, string>(64);
  private tokenizer?: TextTokenizer;

  private constructor(
    readonly info: EngineInfo,
    private m: ModelManifest,
    private model: OrtModel,
    private modelDir: string,
  ) {
    this.cache = model.createCache(1024);
  }

  static async create(opts: EngineOptions): Promise<EngineCore> {
    const m = readManifest(opts.modelDir);
    const emb = new EmbeddingTable(join(opts.modelDir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
    const choice = await withFallback(opts.provider ?? DEFAULT_PROVIDER, (p, auto) => OrtModel.load(opts.modelDir, m, p, emb, { threads: opts.threads, auto, kvOnDevice: opts.kvOnDevice }));
    const info: EngineInfo = {
      modelDir: opts.modelDir,
      architecture: m.architecture,
      precision: m.precision,
      provider: choice.provider,
      providerReason: choice.reason,
    };
    return new EngineCore(info, m, choice.value, opts.modelDir);
  }

  async ask(req: AskRequest, ctx: RunContext): Promise<GenerationResult> {
    if (typeof req.question !== 'string' || req.question.trim() === '') throw new InputError('the question is empty', 'prompt');
    const tok = this.requireTokenizer();
    const prompt = chatPrompt(req.question, req.images.length);
    const promptIds = tokenizeWithImages(prompt, (t) => tok.encode(t), this.m.tokens.imagePlaceholder);
    return this.generateIds({ promptIds, images: req.images, options: req.options }, ctx);
  }

  async generateIds(req: GenerateIdsRequest, ctx: RunContext): Promise<GenerationResult> {
    const t0 = performance.now();
    const ort0 = this.model.ortMs;
    const io0 = { ...this.model.io };
    const o = resolveOptions(req.options, this.m.blockSize);
    const tk = this.m.tokens;
    const ids = req.promptIds;
    if (!Array.isArray(ids) || ids.length === 0) throw new InputError('the prompt is empty', 'prompt');
    for (const id of ids) {
      if (id !== tk.imagePlaceholder && (!Number.isInteger(id) || id < 0 || id >= this.m.embeddings.rows)) throw new InputError(`prompt id ${id} is outside the vocabulary`, 'prompt');
    }
    const slots = countPlaceholders(ids, tk.imagePlaceholder);
    if (slots !== req.images.length) throw new InputError(`the prompt has ${slots} image placeholder(s) but ${req.images.length} image(s) were given`, 'prompt');
    const check = () => {
      if (ctx.cancelled()) throw new CancelledError();
    };

    // Images → features (cached by the preprocessed pixels, so the same picture is encoded once).
    const tv = performance.now();
    const features: Float32Array[] = [];
    const imageKeys: string[] = [];
    let visionHit = req.images.length > 0;
    for (const image of req.images) {
      check();
      const { key, features: f, hit } = await this.imageFeatures(image, o.alpha, check);
      if (!hit) visionHit = false;
      features.push(f);
      imageKeys.push(key);
    }
    const visionMs = performance.now() - tv;

    // Splice: text rows from the table, each image's features at its placeholder.
    const h = this.m.text.hiddenSize;
    const counts = features.map((f) => f.length / h);
    const promptLen = ids.length - slots + counts.reduce((a, b) => a + b, 0);
    const embeds = new Float32Array(promptLen * h);
    let row = 0;
    let img = 0;
    for (const id of ids) {
      if (id === tk.imagePlaceholder) {
        embeds.set(features[img], row * h);
        row += counts[img++];
      } else this.model.embedRow(id, embeds, row++ * h);
    }

    // Prompt-prefix reuse: full leading blocks identical to the previous prompt keep their K/V.
    let reused = 0;
    let digests: string[] = [];
    if (!o.noKvCache) {
      const lay = blockLayout(promptLen, o.maxNewTokens, o.blockSize);
      digests = prefixBlockDigests(ids, tk.imagePlaceholder, imageKeys, counts, o.blockSize, lay.prefillLen / o.blockSize);
      const shared = o.prefixCache ? sharedPrefix(this.cachedPrefix, digests) : 0;
      reused = shared * o.blockSize;
      this.cachedPrefix = this.cachedPrefix.slice(0, shared);
    }

    const timing = { prefillMs: 0, decodeMs: 0 };
    const tok = this.tokenizer ?? this.optionalTokenizer();
    const blockLen = o.blockSize;
    const result = await runBlockDiffusion(
      this.model,
      embeds,
      promptLen,
      {
        genLen: o.maxNewTokens,
        blockSize: blockLen,
        steps: o.steps,
        strategy: o.strategy,
        threshold: o.threshold,
        maskId: tk.mask,
        eosId: tk.eos,
        sampling: { temperature: o.temperature, topK: o.topK, topP: o.topP },
        rng: o.temperature > 0 ? new Xoshiro128(o.seed) : undefined,
        fusedCommit: o.fusedCommit,
        noKvCache: o.noKvCache,
      },
      o.noKvCache ? null : this.cache,
      reused,
      {
        checkCancel: check,
        timing,
        onPrefilled: () => {
          this.cachedPrefix = digests;
        },
        onStep: ctx.steps
          ? (block, step, blockIds) =>
              ctx.emit({ kind: 'step', block, step, blockIds, blockText: tok ? tok.decodeWithMasks(blockIds, tk.mask, MASK_TEXT) : '' })
          : undefined,
        onBlock: (block, gen) => ctx.emit({ kind: 'block', block, ids: gen, text: this.answerText(gen) }),
      },
    );

    const out = result.outputIds;
    const generatedTokens = out.filter((id) => id !== tk.mask).length;
    const f = result.forwards;
    return {
      outputIds: out,
      text: this.answerText(out),
      stats: {
        generatedTokens,
        forwards: f,
        tokensPerForward: generatedTokens / Math.max(1, f.prefill + f.denoise + f.commit),
        timings: {
          visionMs,
          prefillMs: timing.prefillMs,
          decodeMs: timing.decodeMs,
          totalMs: performance.now() - t0,
          ortRunMs: this.model.ortMs - ort0,
        },
        cache: { visionHit, prefixHit: reused > 0, prefixReusedTokens: reused },
        io: {
          pastKvHostBytes: this.model.io.pastKvHostBytes - io0.pastKvHostBytes,
          pastKvHostRuns: this.model.io.pastKvHostRuns - io0.pastKvHostRuns,
        },
      },
    };
  }

  async dispose(): Promise<void> {
    this.cache.dispose();
    await this.model.release();
  }

  /** Answer text: ids up to the first EOS, special tokens and MASK dropped. */
  private answerText(ids: number[]): string {
    const tok = this.tokenizer ?? this.optionalTokenizer();
    if (!tok) return '';
    const eos = ids.indexOf(this.m.tokens.eos);
    return tok.decode(eos < 0 ? ids : ids.slice(0, eos));
  }

  /**
   * Features for one image. Two cache levels: the encoded file's bytes (skips decoding and resizing when the same
   * file comes again) and the preprocessed pixels + grid (the features' real identity: different files that
   * preprocess to the same pixels share an entry).
   */
  private async imageFeatures(image: ImageInput, alpha: 'white' | 'drop', check: () => void): Promise<{ key: string; features: Float32Array; hit: boolean }> {
    // Read once: the bytes key the cache and, on a miss, are what gets decoded.
    const { bytes, label } = await readImageBytes(image, MAX_IMAGE_BYTES);
    const fileKey = createHash('sha256').update(bytes).update(alpha).digest('hex');
    const known = this.fileToPixelKey.get(fileKey);
    const cached = known ? this.visionCache.get(known) : undefined;
    if (known && cached) return { key: known, features: cached, hit: true };
    const pre = await preprocessImage({ bytes, label }, preprocessOptionsFor(this.m.image, this.m.vision, alpha));
    const key = createHash('sha256')
      .update(Buffer.from(pre.pixelValues.buffer, pre.pixelValues.byteOffset, pre.pixelValues.byteLength))
      .update(pre.gridThw.join('x'))
      .digest('hex');
    this.fileToPixelKey.set(fileKey, key);
    let features = this.visionCache.get(key);
    const hit = features !== undefined;
    if (!features) {
      check();
      features = await this.encodeImage(pre.pixelValues, pre.gridThw);
      this.visionCache.set(key, features);
    }
    return { key, features, hit };
  }

  private async encodeImage(pixels: Float32Array, grid: [number, number, number]): Promise<Float32Array> {
    const v = this.m.vision;
    const layout = visionLayout(grid, v);
    const unit = v.spatialMergeSize * v.spatialMergeSize;
    const rowLen = pixels.length / layout.numPatches;
    const rot = visionRotary(layout, v);
    return this.model.vision({
      patches: permuteUnits(pixels, rowLen, unit, layout.windowIndex),
      cos: permuteUnits(rot.cos, v.headDim, unit, layout.windowIndex),
      sin: permuteUnits(rot.sin, v.headDim, unit, layout.windowIndex),
      windowMask: windowMask(layout),
      restoreIndex: layout.restoreIndex,
    });
  }

  private tokenizerChecked = false;
  private optionalTokenizer(): TextTokenizer | undefined {
    if (!this.tokenizerChecked) {
      this.tokenizerChecked = true;
      const file = this.m.files.tokenizer;
      if (file && existsSync(join(this.modelDir, file))) this.tokenizer = TextTokenizer.fromFile(join(this.modelDir, file));
    }
    return this.tokenizer;
  }

  private requireTokenizer(): TextTokenizer {
    const tok = this.optionalTokenizer();
    if (!tok) throw new DiffusionVLError('model', `the model in ${this.modelDir} has no tokenizer.json, so it cannot take questions (prompt ids still work)`);
    return tok;
  }
}
