import type { ForwardCounts, RemaskingStrategy } from './api';
import type { DiffusionModel } from './diffusionModel';
import type { KvCache } from './kvCache';
import { cachedUnfused, fullRecompute, fusedCommit, type ForwardStrategy, type StrategyContext } from './forwardStrategies';
import { range } from './rope';
import type { Xoshiro128 } from './rng';
import { rawSoftmaxProb, sampleRow, type SamplingParams } from './sampling';
import { blockLayout, transferSchedule } from './schedule';
import { selectTransfers } from './remasking';

/**
 * The block-diffusion generation loop (`generate_with_bd3lm`): blocks aligned to absolute position 0, a
 * block-causal prefill of the prompt's full blocks, then per block up to S+1 iterations of "denoise and unmask the
 * most confident positions", a commit once no mask is left, and an EOS check after each finished block. How a
 * pass reaches the decoder and how finished blocks are committed is a forward strategy (forwardStrategies.ts).
 */
export interface DiffusionParams {
  genLen: number;
  blockSize: number;
  steps: number;
  strategy: RemaskingStrategy;
  threshold: number;
  maskId: number;
  eosId: number;
  /** Greedy when temperature is 0. */
  sampling: SamplingParams;
  rng?: Xoshiro128;
  /** Fold each finished block's commit into the next block's first forward (see forwardStrategies.fusedCommit). */
  fusedCommit: boolean;
  /** Recompute everything each forward with the block-causal mask (no cache); for benchmarks. */
  noKvCache: boolean;
  /**
   * What sizes the unmasking schedule in full-diffusion mode (B ≥ L+G): the configured block size (QwenVL code,
   * the default) or the generation length (the Qwen/SigLIP code).
   */
  fullDiffusionSchedule?: 'blockSize' | 'genLength';
  /**
   * Confidence of a sampled token (temperature > 0): its probability under the filtered distribution it was drawn
   * from (QwenVL code, the default) or under the softmax of the raw logits (Qwen/SigLIP code).
   */
  samplingConfidence?: 'filtered' | 'raw';
}

export interface DiffusionHooks {
  /** Throws to cancel; called before every forward. */
  checkCancel(): void;
  /** Blocks are numbered from 0 = the first block holding generated positions. */
  /** After each denoising step: the block's generated ids (MASK where still masked). */
  onStep?(block: number, step: number, blockIds: number[]): void;
  /** After each finished block: every generated id so far. */
  onBlock?(block: number, ids: number[]): void;
  /** The prompt's full blocks are now in the cache (positions [0, prefillLen)). */
  onPrefilled?(prefillLen: number): void;
  /** Wall time spent in the forward passes, split by kind. */
  timing?: { prefillMs: number; decodeMs: number };
}

export interface DiffusionResult {
  /** Exactly genLen ids; never-processed positions keep the MASK id. */
  outputIds: number[];
  forwards: ForwardCounts;
}

export async function runBlockDiffusion(
  model: DiffusionModel,
  promptEmbeds: Float32Array,
  promptLen: number,
  p: DiffusionParams,
  /** Cache holding `reusedLen` valid positions of this prompt's prefix (ignored in noKvCache mode). */
  cache: KvCache | null,
  reusedLen: number,
  hooks: DiffusionHooks,
): Promise<DiffusionResult> {
  const h = model.hiddenSize;
  const L = promptLen;
  const lay = blockLayout(L, p.genLen, p.blockSize);
  const B = lay.blockLen;
  // The QwenVL code sizes the schedule with the configured block size even in full-diffusion mode; the Qwen code
  // uses the generation length there.
  const schedule = transferSchedule(lay.fullDiffusion && p.fullDiffusionSchedule === 'genLength' ? p.genLen : p.blockSize, p.steps);
  const forwards: ForwardCounts = { prefill: 0, denoise: 0, commit: 0, fusedCommits: 0 };
  const sampling = p.sampling.temperature > 0;
  if (sampling && !p.rng) throw new Error('sampling needs a random generator');

  const ids = new Int32Array(lay.totalLen).fill(p.maskId);
  const x = new Float32Array(lay.totalLen * h);
  x.set(promptEmbeds.subarray(0, L * h));
  const maskRow = new Float32Array(h);
  model.embedRow(p.maskId, maskRow, 0);

  const ctx: StrategyContext = {
    model,
    x,
    blockLen: B,
    prefillLen: lay.prefillLen,
    forwards,
    checkCancel: hooks.checkCancel,
    async timed(kind, f) {
      const t0 = performance.now();
      try {
        return await f();
      } finally {
        if (hooks.timing) hooks.timing[kind] += performance.now() - t0;
      }
    },
  };
  const strategy = chooseStrategy(ctx, p, cache, reusedLen);
  await strategy.prefill();
  if (cache && !p.noKvCache) hooks.onPrefilled?.(lay.prefillLen);

  const firstBlock = lay.prefillLen / B;
  for (let b = firstBlock; b < lay.numBlocks; b++) {
    const s0 = b * B;
    const s1 = s0 + B;
    for (let i = Math.max(s0, L); i < s1; i++) x.set(maskRow, i * h);

    for (let s = 0; s <= p.steps; s++) {
      const masked: boolean[] = range(s0, s1).map((i) => i >= L && ids[i] === p.maskId);
      if (!masked.includes(true)) {
        await strategy.finish(s0, s1);
        break;
      }

      hooks.checkCancel();
      // Greedy decoding reads only the masked rows; sampling draws on every row, as the reference does, so that the
      // random stream advances identically.
      const want = sampling ? range(0, B) : range(0, B).filter((r) => masked[r]);
      const hidden = await strategy.denoise(s0, s1, want);
      forwards.denoise++;
      const head = await ctx.timed('decodeMs', () => model.head(hidden, sampling));
      const x0 = new Int32Array(B);
      const conf = new Float64Array(B).fill(-Infinity);
      want.forEach((r, k) => {
        if (sampling) {
          const v = head.logits!.length / want.length;
          const row = head.logits!.subarray(k * v, (k + 1) * v);
          const pick = sampleRow(row, p.sampling, p.rng!);
          x0[r] = pick.id;
          if (masked[r]) conf[r] = p.samplingConfidence === 'raw' ? rawSoftmaxProb(row, pick.id) : pick.prob;
        } else {
          x0[r] = head.ids[k];
          conf[r] = head.probs[k];
        }
      });
      for (const r of selectTransfers(conf, masked, schedule[s], p.strategy, p.threshold)) {
        const q = s0 + r;
        ids[q] = x0[r];
        model.embedRow(x0[r], x, q * h);
      }
      hooks.onStep?.(b - firstBlock, s, generatedSlice(ids, s0, s1, L, p.genLen));
    }

    // A block that still holds masks after S+1 iterations is never committed (the reference leaves a hole).
    hooks.onBlock?.(b - firstBlock, generatedSlice(ids, L, s1, L, p.genLen));
    if (s1 > L && ids.subarray(Math.max(L, s0), s1).includes(p.eosId)) break;
  }
  // A pending fused commit at the end is simply dropped: nothing would read those K/V.

  return { outputIds: Array.from(ids.subarray(L, L + p.genLen)), forwards };
}

function chooseStrategy(ctx: StrategyContext, p: DiffusionParams, cache: KvCache | null, reusedLen: number): ForwardStrategy {
  if (p.noKvCache || !cache) return fullRecompute(ctx);
  return p.fusedCommit ? fusedCommit(ctx, cache, reusedLen) : cachedUnfused(ctx, cache, reusedLen);
}

function generatedSlice(ids: Int32Array, from: number, to: number, promptLen: number, genLen: number): number[] {
  return Array.from(ids.subarray(Math.max(from, promptLen), Math.min(to, promptLen + genLen)));
}
