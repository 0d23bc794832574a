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
import { qwenVLAdapter } from './arch/qwenvl';
import { siglipAdapter } from './arch/siglip';
import type { ArchAdapter, ImageRequest } from './arch/types';
import { runBlockDiffusion, type DiffusionParams } from './blockDiffusion';
import { EmbeddingTable } from './embeddings';
import { MAX_IMAGE_BYTES } from './image';
import { readImageBytes } from './image/decode';
import type { KvCache } from './kvCache';
import { LruCache } from './lruCache';
import { readManifest, type ModelManifest } from './manifest';
import { resolveOptions, type ResolvedOptions } from './options';
import { loadLlamaDecoder, type DecoderRuntime } from './backends/decoderChoice';
import { OrtModel, type IoCounters } from './backends/onnx/ortModel';
import { prefixBlockDigests, sharedPrefix } from './prefixKeys';
import { chatPrompt, countPlaceholders, tokenizeWithImages } from './prompt';
import { withFallback } from './providers';
import { Xoshiro128 } from './rng';
import { blockLayout } from './schedule';
import { TextTokenizer } from './tokenizer';
import { AcceptanceRate, chooseVerifySteps, DEFAULT_MODEL_ACCEPTANCE, measureRowCost, type RowCost, type VerifyChoice } from './verifySteps';

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
  /** c(K) of this model on this device, per block size, measured on first use (verifySteps auto). */
  private rowCost = new Map<number, Promise<RowCost>>();
  private acceptance = new AcceptanceRate(DEFAULT_MODEL_ACCEPTANCE);

  private constructor(
    readonly info: EngineInfo,
    private m: ModelManifest,
    private model: OrtModel,
    /** The text decoder and head: `model` itself on ONNX Runtime, or another backend (llama.cpp). */
    private decoder: DecoderRuntime,
    private modelDir: string,
    private arch: ArchAdapter,
  ) {
    this.cache = decoder.createCache(1024);
  }

  static async create(opts: EngineOptions): Promise<EngineCore> {
    const m = readManifest(opts.modelDir);
    const emb = new EmbeddingTable(join(opts.modelDir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
    // The decoder's backend first: with llama.cpp, ONNX Runtime opens only the vision tower.
    const { llama, reason } = await loadLlamaDecoder(opts, m, emb);
    let choice;
    try {
      choice = await withFallback(opts.provider ?? DEFAULT_PROVIDER, (p, auto) =>
        OrtModel.load(opts.modelDir, m, p, emb, { threads: opts.threads, auto, kvOnDevice: opts.kvOnDevice, textDecoder: !llama }),
      );
    } catch (err) {
      await llama?.release();
      throw err;
    }
    const decoder = llama ? { decoder: llama, backend: 'llama.cpp' as const } : { decoder: choice.value, backend: 'onnx' as const };
    const info: EngineInfo = {
      modelDir: opts.modelDir,
      architecture: m.architecture,
      precision: m.precision,
      provider: choice.provider,
      providerReason: choice.reason,
      backend: decoder.backend,
      backendReason: reason,
    };
    const arch = m.architecture === 'diffusionvl_qwen' ? siglipAdapter(m, choice.value, opts.modelDir) : qwenVLAdapter(m, choice.value);
    return new EngineCore(info, m, choice.value, decoder.decoder, opts.modelDir, arch);
  }

  async ask(req: AskRequest, ctx: RunContext): Promise<GenerationResult> {
    if (typeof req.question !== 'string' || req.question.trim() === '') throw new InputError('the question is empty', 'prompt');
    const tok = this.requireTokenizer();
    const prompt = chatPrompt(req.question, req.images.length);
    const promptIds = tokenizeWithImages(prompt, (t) => tok.encode(t), this.m.tokens.imagePlaceholder);
    // Questions take the official evaluation driver's path, which has its own image handling for several images.
    const aspect = req.options?.imageAspectRatio ?? this.arch.driverAspectRatio(req.images.length);
    const options = aspect === undefined ? req.options : { ...req.options, imageAspectRatio: aspect };
    return this.generateIds({ promptIds, images: req.images, options }, ctx);
  }

  /**
   * One generation, in named steps: check the request, encode the images, splice the prompt, find the reusable
   * cached prefix, run the shared block-diffusion loop, report.
   */
  async generateIds(req: GenerateIdsRequest, ctx: RunContext): Promise<GenerationResult> {
    const t0 = performance.now();
    const ort0 = this.model.ortMs;
    const io0 = { ...this.model.io };
    const o = resolveOptions(req.options, this.m.blockSize);
    const check = () => {
      if (ctx.cancelled()) throw new CancelledError();
    };
    const ids = this.validatedPromptIds(req);
    const imageReq: ImageRequest = { alpha: req.options?.alpha, aspectRatio: req.options?.imageAspectRatio, imageCount: req.images.length };
    const vision = await this.encodeImages(req.images, imageReq, check);
    const prompt = this.splice(ids, vision.features);
    // Measuring what verified steps cost (once) runs passes of its own, and a llama.cpp context may be replaced to
    // fit this run: both before the cached prefix is looked at.
    const verify = await this.verifySteps(o);
    await this.reserveCache(prompt.promptLen, o, verify.k);
    const prefix = this.reusablePrefix(ids, vision.keys, prompt, o);
    const timing = { prefillMs: 0, decodeMs: 0 };
    const result = await this.runLoop(prompt, prefix, o, verify.k, ctx, check, timing);
    this.acceptance.add(result.forwards.draftsAccepted ?? 0, result.forwards.draftsChecked ?? 0);
    return this.report(result, verify, { t0, ort0, io0, visionMs: vision.ms, visionHit: vision.hit, reused: prefix.reused, promptTokens: prompt.promptLen, ...timing });
  }

  /** Prompt ids checked against the vocabulary and the images, as the architecture's official code splices them. */
  private validatedPromptIds(req: GenerateIdsRequest): number[] {
    const tk = this.m.tokens;
    const ids = req.promptIds;
    if (!Array.isArray(ids) || ids.length === 0) throw new InputError('the prompt is empty', 'prompt');
    for (const id of ids) {
      if (id !== tk.imagePlaceholder && (!Number.isInteger(id) || id < 0 || id >= this.m.embeddings.rows)) throw new InputError(`prompt id ${id} is outside the vocabulary`, 'prompt');
    }
    const slots = countPlaceholders(ids, tk.imagePlaceholder);
    if (slots !== req.images.length) throw new InputError(`the prompt has ${slots} image placeholder(s) but ${req.images.length} image(s) were given`, 'prompt');
    return this.arch.promptIds(ids, req.images.length);
  }

  /** Images → rows to splice (cached by what the vision graph sees, so the same picture is encoded once). */
  private async encodeImages(images: ImageInput[], imageReq: ImageRequest, check: () => void): Promise<{ features: Float32Array[]; keys: string[]; hit: boolean; ms: number }> {
    const tv = performance.now();
    const features: Float32Array[] = [];
    const keys: string[] = [];
    let hit = images.length > 0;
    for (const image of images) {
      check();
      const f = await this.imageFeatures(image, imageReq, check);
      if (!f.hit) hit = false;
      features.push(f.features);
      keys.push(f.key);
    }
    return { features, keys, hit, ms: performance.now() - tv };
  }

  /** Text rows from the embedding table, each image's rows at its placeholder. */
  private splice(ids: number[], features: Float32Array[]): { embeds: Float32Array; promptLen: number; counts: number[] } {
    const h = this.m.text.hiddenSize;
    const counts = features.map((f) => f.length / h);
    const promptLen = ids.length - features.length + counts.reduce((a, b) => a + b, 0);
    const embeds = new Float32Array(promptLen * h);
    let row = 0;
    let img = 0;
    for (const id of ids) {
      if (id === this.m.tokens.imagePlaceholder) {
        embeds.set(features[img], row * h);
        row += counts[img++];
      } else this.decoder.embedRow(id, embeds, row++ * h);
    }
    const limit = this.arch.promptRowLimit(features.length);
    if (limit !== undefined && promptLen > limit) return { embeds: embeds.subarray(0, limit * h), promptLen: limit, counts };
    return { embeds, promptLen, counts };
  }

  /**
   * Cache room for this run: its padded length plus the rows of its widest pass (K drafted states). A replaced cache
   * is empty, and reusablePrefix never reuses more than the cache holds.
   */
  private async reserveCache(promptLen: number, o: ResolvedOptions, verifySteps: number): Promise<void> {
    if (!this.decoder.reserve) return;
    const lay = blockLayout(promptLen, o.maxNewTokens, o.blockSize);
    await this.decoder.reserve(lay.totalLen + Math.max(1, verifySteps) * lay.blockLen);
  }

  /** Prompt-prefix reuse: full leading blocks identical to the previous prompt keep their K/V. */
  private reusablePrefix(ids: number[], imageKeys: string[], prompt: { promptLen: number; counts: number[] }, o: ResolvedOptions): { reused: number; digests: string[] } {
    if (o.noKvCache) return { reused: 0, digests: [] };
    const lay = blockLayout(prompt.promptLen, o.maxNewTokens, o.blockSize);
    const digests = prefixBlockDigests(ids, this.m.tokens.imagePlaceholder, imageKeys, prompt.counts, o.blockSize, lay.prefillLen / o.blockSize);
    // Never more blocks than the cache still holds (a pass without the cache empties llama.cpp's).
    const held = Math.floor(this.cache.length / o.blockSize);
    const shared = o.prefixCache ? Math.min(held, sharedPrefix(this.cachedPrefix, digests)) : 0;
    this.cachedPrefix = this.cachedPrefix.slice(0, shared);
    return { reused: shared * o.blockSize, digests };
  }

  /** The shared block-diffusion loop with this run's options, cache and events. */
  private runLoop(
    prompt: { embeds: Float32Array; promptLen: number },
    prefix: { reused: number; digests: string[] },
    o: ResolvedOptions,
    verifySteps: number,
    ctx: RunContext,
    check: () => void,
    timing: { prefillMs: number; decodeMs: number },
  ): ReturnType<typeof runBlockDiffusion> {
    const tk = this.m.tokens;
    const tok = this.tokenizer ?? this.optionalTokenizer();
    const loop: DiffusionParams = {
      genLen: o.maxNewTokens,
      blockSize: o.blockSize,
      steps: o.steps,
      strategy: o.strategy,
      threshold: o.threshold,
      maskId: tk.mask,
      eosId: tk.eos,
      sampling: { temperature: o.temperature, topK: o.topK, topP: o.topP },
      rng: o.temperature > 0 ? new Xoshiro128(o.seed) : undefined,
      fusedCommit: o.fusedCommit,
      noKvCache: o.noKvCache,
      verifySteps,
      ...this.arch.loop,
    };
    return runBlockDiffusion(this.decoder, prompt.embeds, prompt.promptLen, loop, o.noKvCache ? null : this.cache, prefix.reused, {
      checkCancel: check,
      timing,
      onPrefilled: () => {
        this.cachedPrefix = prefix.digests;
      },
      onStep: ctx.steps
        ? (block, step, blockIds) => ctx.emit({ kind: 'step', block, step, blockIds, blockText: tok ? tok.decodeWithMasks(blockIds, tk.mask, MASK_TEXT) : '' })
        : undefined,
      onBlock: (block, gen) => ctx.emit({ kind: 'block', block, ids: gen, text: this.answerText(gen) }),
    });
  }

  /**
   * States per verifying forward for this run: the option when forced, else what this device makes cheap (c(K)
   * measured once per block size for this loaded model, the acceptance rate this process has seen).
   */
  private async verifySteps(o: ResolvedOptions): Promise<VerifyChoice> {
    if (o.verifySteps !== 'auto') return { k: o.verifySteps, reason: 'set' };
    if (o.noKvCache) return { k: 1, reason: 'auto: no KV cache, one state per forward' };
    let cost = this.rowCost.get(o.blockSize);
    if (!cost) {
      cost = measureRowCost(this.decoder, o.blockSize, this.m.tokens.mask);
      this.rowCost.set(o.blockSize, cost);
    }
    return chooseVerifySteps(await cost, this.acceptance.value);
  }

  /** The result with its statistics. */
  private report(
    result: Awaited<ReturnType<typeof runBlockDiffusion>>,
    verify: VerifyChoice,
    t: { t0: number; ort0: number; io0: IoCounters; visionMs: number; visionHit: boolean; reused: number; promptTokens: number; prefillMs: number; decodeMs: number },
  ): GenerationResult {
    const out = result.outputIds;
    const generatedTokens = out.filter((id) => id !== this.m.tokens.mask).length;
    const f = result.forwards;
    return {
      outputIds: out,
      text: this.answerText(out),
      stats: {
        promptTokens: t.promptTokens,
        generatedTokens,
        forwards: f,
        tokensPerForward: generatedTokens / Math.max(1, f.prefill + f.denoise + f.commit),
        verify,
        timings: { visionMs: t.visionMs, prefillMs: t.prefillMs, decodeMs: t.decodeMs, totalMs: performance.now() - t.t0, ortRunMs: this.model.ortMs - t.ort0 },
        cache: { visionHit: t.visionHit, prefixHit: t.reused > 0, prefixReusedTokens: t.reused },
        io: {
          pastKvHostBytes: this.model.io.pastKvHostBytes - t.io0.pastKvHostBytes,
          pastKvHostRuns: this.model.io.pastKvHostRuns - t.io0.pastKvHostRuns,
        },
      },
    };
  }

  async dispose(): Promise<void> {
    this.cache.dispose();
    if (this.decoder !== this.model) await this.decoder.release();
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
   * Rows for one image. Two cache levels: the encoded file's bytes (skips decoding and resizing when the same file
   * comes again with the same options) and what the vision graph sees (different files that preprocess to the same
   * pixels share an entry).
   */
  private async imageFeatures(image: ImageInput, req: ImageRequest, check: () => void): Promise<{ key: string; features: Float32Array; hit: boolean }> {
    // Read once: the bytes key the cache and, on a miss, are what gets decoded.
    const { bytes, label } = await readImageBytes(image, MAX_IMAGE_BYTES);
    const fileKey = createHash('sha256').update(bytes).update(this.arch.imageOptionsKey(req)).digest('hex');
    const known = this.fileToPixelKey.get(fileKey);
    const cached = known ? this.visionCache.get(known) : undefined;
    if (known && cached) return { key: known, features: cached, hit: true };
    const prepared = await this.arch.prepareImage({ bytes, label }, req);
    this.fileToPixelKey.set(fileKey, prepared.key);
    let features = this.visionCache.get(prepared.key);
    const hit = features !== undefined;
    if (!features) {
      check();
      features = await prepared.encode(check);
      this.visionCache.set(prepared.key, features);
    }
    return { key: prepared.key, features, hit };
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
