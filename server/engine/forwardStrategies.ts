import type { ForwardCounts } from './api';
import type { DiffusionModel, HiddenRows } from './diffusionModel';
import type { KvCache } from './kvCache';
import { blockCausalMask, fusedCommitMask, openMask } from './masks';
import { range } from './rope';

/**
 * How the block-diffusion loop turns "denoise block [s0, s1)" into decoder passes, and how a finished block's K/V
 * reach the context. The loop (blockDiffusion.ts) owns the schedule, remasking and ids; a strategy owns the
 * decoder calls, the context and the forward counts.
 *
 * Where the K/V live is the model's business, not the strategy's: the cached strategies run unchanged over a
 * host-memory cache (CPU, zero-copy views) and over the device-resident cache of WebGPU (DeviceKvCache: past K/V
 * never leave the GPU, the hidden rows go from decoder to head on the device, only arg-max ids and probabilities are
 * read back), so the device-resident variant is these same strategies over a DeviceKvCache, not a fourth loop.
 */
export interface ForwardStrategy {
  readonly name: string;
  /** Brings the prompt's full blocks, positions [0, prefillLen), into the context. */
  prefill(): Promise<void>;
  /** One denoising pass of block [s0, s1): its hidden rows (for the head) and the first of them that belong to it. */
  denoise(s0: number, s1: number): Promise<{ hidden: HiddenRows; fromRow: number }>;
  /** Block [s0, s1) has no mask left: make its K/V part of the context (now or with the next pass). */
  finish(s0: number, s1: number): Promise<void>;
}

export interface StrategyContext {
  model: DiffusionModel;
  /** Embeddings of every position [totalLen, hidden]: the prompt's rows and the current state of generated rows. */
  x: Float32Array;
  blockLen: number;
  prefillLen: number;
  forwards: ForwardCounts;
  checkCancel(): void;
  /** Wraps every decoder pass, for the prefill/decode timings. */
  timed<T>(kind: 'prefillMs' | 'decodeMs', f: () => Promise<T>): Promise<T>;
}

/** No cache: every pass recomputes all committed positions plus the block, block-causal (benchmarks, comparisons). */
export function fullRecompute(c: StrategyContext): ForwardStrategy {
  const h = c.model.hiddenSize;
  const context = range(0, c.prefillLen);
  return {
    name: 'full recompute',
    async prefill() {},
    async denoise(s0, s1) {
      const pos = context.concat(range(s0, s1));
      const embeds = new Float32Array(pos.length * h);
      pos.forEach((q, r) => embeds.set(c.x.subarray(q * h, (q + 1) * h), r * h));
      const hidden = await c.timed('decodeMs', () => c.model.decode(embeds, pos, blockCausalMask(pos, 0, c.blockLen), null, { commitRows: 0, hidden: true }));
      return { hidden: hidden!, fromRow: pos.length - (s1 - s0) };
    },
    async finish(s0, s1) {
      context.push(...range(s0, s1));
    },
  };
}

/**
 * KV cache, the official call pattern: the prompt's full blocks are prefilled once, each denoising pass attends to
 * the cache, and a finished block is committed by a pass of its own.
 */
export function cachedUnfused(c: StrategyContext, cache: KvCache, reusedLen: number): ForwardStrategy {
  const h = c.model.hiddenSize;
  return {
    name: 'cached',
    prefill: () => prefillCache(c, cache, reusedLen),
    async denoise(s0, s1) {
      const hidden = await c.timed('decodeMs', () => c.model.decode(c.x.subarray(s0 * h, s1 * h), range(s0, s1), openMask(s1 - s0, cache.length), cache, { commitRows: 0, hidden: true }));
      return { hidden: hidden!, fromRow: 0 };
    },
    async finish(s0, s1) {
      c.checkCancel();
      await c.timed('decodeMs', () => c.model.decode(c.x.subarray(s0 * h, s1 * h), range(s0, s1), openMask(s1 - s0, cache.length), cache, { commitRows: s1 - s0, hidden: false }));
      c.forwards.commit++;
    },
  };
}

/**
 * KV cache with fused commits: a finished block's commit rides along with the next block's first denoising pass
 * ([finished block, next block] in one pass, see fusedCommitMask), saving one pass per block; the last block's
 * commit is never needed. Same outputs as `cachedUnfused`.
 */
export function fusedCommit(c: StrategyContext, cache: KvCache, reusedLen: number): ForwardStrategy {
  const h = c.model.hiddenSize;
  const unfused = cachedUnfused(c, cache, reusedLen);
  let pending: { start: number; end: number } | null = null;
  return {
    name: 'cached, fused commit',
    prefill: unfused.prefill,
    async denoise(s0, s1) {
      if (!pending) return unfused.denoise(s0, s1);
      const done = pending.end - pending.start;
      const pos = range(pending.start, pending.end).concat(range(s0, s1));
      const embeds = pending.end === s0 ? c.x.subarray(pending.start * h, s1 * h) : concatRows(c.x, h, pending, s0, s1);
      const mask = fusedCommitMask(done, s1 - s0, cache.length);
      const hidden = await c.timed('decodeMs', () => c.model.decode(embeds, pos, mask, cache, { commitRows: done, hidden: true }));
      c.forwards.fusedCommits = (c.forwards.fusedCommits ?? 0) + 1;
      pending = null;
      return { hidden: hidden!, fromRow: done };
    },
    async finish(s0, s1) {
      pending = { start: s0, end: s1 };
    },
  };
}

/** Prefill of the prompt's full blocks not already in the cache (prompt-prefix reuse keeps `reusedLen` of them). */
async function prefillCache(c: StrategyContext, cache: KvCache, reusedLen: number): Promise<void> {
  const h = c.model.hiddenSize;
  cache.truncate(reusedLen);
  const start = cache.length;
  if (start >= c.prefillLen) return;
  c.checkCancel();
  const pos = range(start, c.prefillLen);
  await c.timed('prefillMs', () =>
    c.model.decode(c.x.subarray(start * h, c.prefillLen * h), pos, blockCausalMask(pos, start, c.blockLen), cache, { commitRows: pos.length, hidden: false }),
  );
  c.forwards.prefill++;
}

function concatRows(x: Float32Array, h: number, a: { start: number; end: number }, s0: number, s1: number): Float32Array {
  const out = new Float32Array((a.end - a.start + s1 - s0) * h);
  out.set(x.subarray(a.start * h, a.end * h));
  out.set(x.subarray(s0 * h, s1 * h), (a.end - a.start) * h);
  return out;
}
