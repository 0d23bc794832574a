import type { ForwardCounts, RemaskingStrategy } from './api';
import type { DiffusionModel } from './diffusionModel';
import type { KvCache } from './kvCache';
import { blockCausalMask, fusedCommitMask, openMask } from './masks';
import { range } from './rope';
import type { Xoshiro128 } from './rng';
import { rawSoftmaxProb, sampleRow, type SamplingParams } from './sampling';
import { blockLayout, transferSchedule } from './schedule';
import { selectTransfers } from './remasking';

/**
 * The block-diffusion generation loop (`generate_with_bd3lm`): blocks aligned to absolute position 0, a
 * block-causal prefill of the prompt's full blocks, then per block up to S+1 iterations of "denoise and unmask the
 * most confident positions", a commit pass once no mask is left, and an EOS check after each finished block.
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
  /** Fold each finished block's commit into the next block's first forward (see fusedCommitMask). */
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
  const useCache = !p.noKvCache && cache !== null;
  const sampling = p.sampling.temperature > 0;
  if (sampling && !p.rng) throw new Error('sampling needs a random generator');

  const ids = new Int32Array(lay.totalLen).fill(p.maskId);
  const x = new Float32Array(lay.totalLen * h);
  x.set(promptEmbeds.subarray(0, L * h));
  const maskRow = new Float32Array(h);
  model.embedRow(p.maskId, maskRow, 0);

  const timed = async <T>(kind: 'prefillMs' | 'decodeMs', f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      if (hooks.timing) hooks.timing[kind] += performance.now() - t0;
    }
  };

  // Positions whose K/V are in the context: the cache's, or the rows recomputed in noKvCache mode.
  const context: number[] = range(0, lay.prefillLen);

  if (useCache) {
    cache.truncate(reusedLen);
    const start = cache.length;
    if (start < lay.prefillLen) {
      hooks.checkCancel();
      const pos = range(start, lay.prefillLen);
      const out = await timed('prefillMs', () =>
        model.decode(x.subarray(start * h, lay.prefillLen * h), pos, blockCausalMask(pos, start, B), cache, true),
      );
      cache.append(out.newKeys!, out.newValues!, pos.length);
      forwards.prefill++;
    }
    hooks.onPrefilled?.(lay.prefillLen);
  }

  // A finished block whose K/V are still to be committed (fused mode).
  let pending: { start: number; end: number } | null = null;
  const firstBlock = lay.prefillLen / B;
  for (let b = firstBlock; b < lay.numBlocks; b++) {
    const s0 = b * B;
    const s1 = s0 + B;
    for (let i = Math.max(s0, L); i < s1; i++) x.set(maskRow, i * h);
    const blockPos = range(s0, s1);

    for (let s = 0; s <= p.steps; s++) {
      const masked: boolean[] = blockPos.map((i) => i >= L && ids[i] === p.maskId);
      if (!masked.includes(true)) {
        if (!useCache) context.push(...blockPos);
        else if (p.fusedCommit) pending = { start: s0, end: s1 };
        else {
          hooks.checkCancel();
          const out = await timed('decodeMs', () => model.decode(x.subarray(s0 * h, s1 * h), blockPos, openMask(B, cache.length), cache, true));
          cache.append(out.newKeys!, out.newValues!, B);
          forwards.commit++;
        }
        break;
      }

      hooks.checkCancel();
      let hidden: Float32Array;
      if (!useCache) {
        // Everything committed so far plus this block, block-causal; keep this block's rows.
        const pos = context.concat(blockPos);
        const embeds = new Float32Array(pos.length * h);
        pos.forEach((q, r) => embeds.set(x.subarray(q * h, (q + 1) * h), r * h));
        const out = await timed('decodeMs', () => model.decode(embeds, pos, blockCausalMask(pos, 0, B), null, false));
        hidden = out.hidden.subarray((pos.length - B) * h);
      } else if (pending) {
        // Fused: [finished block, this block] in one pass; commit the first rows' K/V, head on the last rows.
        const done = pending.end - pending.start;
        const pos = range(pending.start, pending.end).concat(blockPos);
        const contiguous = pending.end === s0;
        const embeds = contiguous ? x.subarray(pending.start * h, s1 * h) : concatRows(x, h, pending, s0, s1);
        const out = await timed('decodeMs', () => model.decode(embeds, pos, fusedCommitMask(done, B, cache.length), cache, true));
        cache.append(out.newKeys!, out.newValues!, done);
        hidden = out.hidden.subarray(done * h);
        forwards.fusedCommits = (forwards.fusedCommits ?? 0) + 1;
        pending = null;
      } else {
        const out = await timed('decodeMs', () => model.decode(x.subarray(s0 * h, s1 * h), blockPos, openMask(B, cache.length), cache, false));
        hidden = out.hidden;
      }
      forwards.denoise++;

      const head = await timed('decodeMs', () => model.head(hidden, sampling));
      const x0 = new Int32Array(B);
      const conf = new Float64Array(B).fill(-Infinity);
      for (let r = 0; r < B; r++) {
        if (sampling) {
          const row = head.logits!.subarray(r * (head.logits!.length / B), (r + 1) * (head.logits!.length / B));
          const pick = sampleRow(row, p.sampling, p.rng!);
          x0[r] = pick.id;
          if (masked[r]) conf[r] = p.samplingConfidence === 'raw' ? rawSoftmaxProb(row, pick.id) : pick.prob;
        } else {
          x0[r] = head.ids[r];
          if (masked[r]) conf[r] = head.probs[r];
        }
      }
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
  // A pending commit at the end is simply dropped: nothing would read those K/V (fused mode saves that pass).

  return { outputIds: Array.from(ids.subarray(L, L + p.genLen)), forwards };
}

function generatedSlice(ids: Int32Array, from: number, to: number, promptLen: number, genLen: number): number[] {
  return Array.from(ids.subarray(Math.max(from, promptLen), Math.min(to, promptLen + genLen)));
}

function concatRows(x: Float32Array, h: number, a: { start: number; end: number }, s0: number, s1: number): Float32Array {
  const out = new Float32Array((a.end - a.start + s1 - s0) * h);
  out.set(x.subarray(a.start * h, a.end * h));
  out.set(x.subarray(s0 * h, s1 * h), (a.end - a.start) * h);
  return out;
}
