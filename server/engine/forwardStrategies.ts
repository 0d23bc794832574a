import type { ForwardCounts } from './api';
import type { DiffusionModel, HiddenRows } from './diffusionModel';
import { blockCausal, open, type AttentionPattern } from './attention';
import type { KvCache } from './kvCache';
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
  /**
   * One denoising pass of block [s0, s1) over one or more states of it (verified multi-step decoding sends the
   * current state and its drafts): each state's rows see the context and themselves only. Returns the head's input
   * for every state's rows `want` (offsets in the block, ascending), state after state.
   */
  denoise(s0: number, s1: number, states: readonly BlockState[]): Promise<HiddenRows>;
  /** Block [s0, s1) has no mask left: make its K/V part of the context (now or with the next pass). */
  finish(s0: number, s1: number): Promise<void>;
}

/** One denoising state of a block: its rows' embeddings ([s1 - s0, hidden]) and the rows whose outputs are wanted. */
export interface BlockState {
  embeds: Float32Array;
  want: readonly number[];
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
    async denoise(s0, s1, states) {
      // Its block-causal pattern has no groups: one state per pass (the loop never drafts without a cache).
      if (states.length !== 1) throw new Error('full recompute denoises one state per pass');
      const pos = context.concat(range(s0, s1));
      const embeds = new Float32Array(pos.length * h);
      context.forEach((q, r) => embeds.set(c.x.subarray(q * h, (q + 1) * h), r * h));
      embeds.set(states[0].embeds, context.length * h);
      const outputRows = shifted(states[0].want, context.length);
      return denoised(await c.timed('decodeMs', () => c.model.decode(embeds, pos, blockCausal(c.blockLen), null, { commitRows: 0, outputRows })));
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
    async denoise(s0, s1, states) {
      const pass = statesPass(s0, s1, states, h, null, c.x);
      return denoised(await c.timed('decodeMs', () => c.model.decode(pass.embeds, pass.positions, pass.pattern, cache, { commitRows: 0, outputRows: pass.outputRows })));
    },
    async finish(s0, s1) {
      c.checkCancel();
      await c.timed('decodeMs', () => c.model.decode(c.x.subarray(s0 * h, s1 * h), range(s0, s1), open(s1 - s0), cache, { commitRows: s1 - s0, outputRows: [] }));
      c.forwards.commit++;
    },
  };
}

/**
 * KV cache with fused commits: a finished block's commit rides along with the next block's first denoising pass
 * ([finished block, next block] in one pass, the finished rows seeing only the cache and themselves), saving one
 * pass per block; the last block's commit is never needed. Same outputs as `cachedUnfused`.
 */
export function fusedCommit(c: StrategyContext, cache: KvCache, reusedLen: number): ForwardStrategy {
  const h = c.model.hiddenSize;
  const unfused = cachedUnfused(c, cache, reusedLen);
  let pending: { start: number; end: number } | null = null;
  return {
    name: 'cached, fused commit',
    prefill: unfused.prefill,
    async denoise(s0, s1, states) {
      if (!pending) return unfused.denoise(s0, s1, states);
      const pass = statesPass(s0, s1, states, h, pending, c.x);
      const req = { commitRows: pending.end - pending.start, outputRows: pass.outputRows };
      const hidden = await c.timed('decodeMs', () => c.model.decode(pass.embeds, pass.positions, pass.pattern, cache, req));
      c.forwards.fusedCommits = (c.forwards.fusedCommits ?? 0) + 1;
      pending = null;
      return denoised(hidden);
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
  await c.timed('prefillMs', () => c.model.decode(c.x.subarray(start * h, c.prefillLen * h), pos, blockCausal(c.blockLen), cache, { commitRows: pos.length, outputRows: [] }));
  c.forwards.prefill++;
}

/** Block offsets → row indices of a pass whose block rows start at `first`. */
function shifted(want: readonly number[], first: number): number[] {
  return want.map((r) => first + r);
}

function denoised(hidden: HiddenRows | null): HiddenRows {
  if (!hidden) throw new Error('a denoising pass returned no rows for the head');
  return hidden;
}

/**
 * The rows of one cached denoising pass: the finished block being committed (`shared`, when a fused commit is
 * pending), then one group of B rows per state at the block's positions. One state without shared rows is fed as
 * a view (no copy).
 */
function statesPass(
  s0: number,
  s1: number,
  states: readonly BlockState[],
  h: number,
  shared: { start: number; end: number } | null,
  x: Float32Array,
): { embeds: Float32Array; positions: number[]; pattern: AttentionPattern; outputRows: number[] } {
  const B = s1 - s0;
  const done = shared ? shared.end - shared.start : 0;
  const blockPos = range(s0, s1);
  const positions = (shared ? range(shared.start, shared.end) : []).concat(...states.map(() => blockPos));
  const outputRows = states.flatMap((st, g) => shifted(st.want, done + g * B));
  const pattern = open(done, ...states.map(() => B));
  if (!shared && states.length === 1) return { embeds: states[0].embeds, positions, pattern, outputRows };
  const embeds = new Float32Array(positions.length * h);
  if (shared) embeds.set(x.subarray(shared.start * h, shared.end * h));
  states.forEach((st, g) => embeds.set(st.embeds, (done + g * B) * h));
  return { embeds, positions, pattern, outputRows };
}
