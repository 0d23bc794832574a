import type { ForwardCounts, RemaskingStrategy } from './api';
import type { DiffusionModel, HeadOutput } from './diffusionModel';
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
   * Verified multi-step decoding: denoising states per pass (the current one and K-1 drafts of the next steps,
   * kept only as far as the real steps reach them). 1 (the default) is one state per pass. Same ids either way.
   */
  verifySteps?: number;
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
  const sampling = p.sampling.temperature > 0;
  if (sampling && !p.rng) throw new Error('sampling needs a random generator');
  // States per verifying pass; without a cache the block-causal recompute has no groups, so one.
  const k = p.noKvCache || !cache ? 1 : (p.verifySteps ?? 1);
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`verifySteps must be a positive integer, got ${k}`);
  const forwards: ForwardCounts = { prefill: 0, denoise: 0, commit: 0, fusedCommits: 0, ...(k > 1 ? { draftsVerified: 0, draftsAccepted: 0, draftsChecked: 0 } : {}) };

  const ids = new Int32Array(lay.totalLen).fill(p.maskId);
  const x = new Float32Array(lay.totalLen * h);
  x.set(promptEmbeds.subarray(0, L * h));
  const maskRow = new Float32Array(h);
  model.embedRow(p.maskId, maskRow, 0);

  /** One step's transition from the head output on a state: predictions per row and the rows unmasked. */
  const transition = (out: StepOutput, masked: boolean[], n: number): Transition => {
    const x0 = new Int32Array(B);
    const conf = new Float64Array(B).fill(-Infinity);
    out.want.forEach((r, k) => {
      if (out.logits) {
        const v = out.logits.length / out.want.length;
        const row = out.logits.subarray(k * v, (k + 1) * v);
        const pick = sampleRow(row, p.sampling, p.rng!);
        x0[r] = pick.id;
        if (masked[r]) conf[r] = p.samplingConfidence === 'raw' ? rawSoftmaxProb(row, pick.id) : pick.prob;
      } else {
        x0[r] = out.ids[k];
        conf[r] = out.probs[k];
      }
    });
    return { x0, conf, picked: selectTransfers(conf, masked, n, p.strategy, p.threshold) };
  };
  /**
   * The states the next `count` steps reach from `from` (step `s`'s state) if their predictions agree with the last
   * transition's: the schedule's count per step, chosen by the same confidence rule. Stops at a state without masks
   * (it is committed, not denoised) and at the loop's last step. No random draws: drafting never touches the rng.
   */
  const draftStates = (last: Transition, from: DraftState, s: number, count: number): DraftState[] => {
    const out: DraftState[] = [];
    let cur = from;
    for (let j = 0; j < count && s + j + 1 <= p.steps; j++) {
      const picked = selectTransfers(last.conf, cur.masked, schedule[s + j], p.strategy, p.threshold);
      const ids = cur.ids.slice();
      const embeds = cur.embeds.slice();
      const masked = cur.masked.slice();
      for (const r of picked) {
        ids[r] = last.x0[r];
        masked[r] = false;
        model.embedRow(last.x0[r], embeds, r * h);
      }
      if (!masked.includes(true)) break;
      cur = { ids, embeds, masked };
      out.push(cur);
    }
    return out;
  };

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

    // Verified multi-step decoding (K > 1): `out` is the head output on the current state when a verifying pass
    // already computed it (an accepted draft); `drafts` are the states the next steps were drafted to reach, each
    // with its output from that same pass; `prev` is the last transition, which drafts are made from.
    let out: StepOutput | null = null;
    let drafts: { ids: Int32Array; out: StepOutput }[] = [];
    let prev: Transition | null = null;
    for (let s = 0; s <= p.steps; s++) {
      const masked: boolean[] = range(s0, s1).map((i) => i >= L && ids[i] === p.maskId);
      if (!masked.includes(true)) {
        await strategy.finish(s0, s1);
        break;
      }

      if (!out) {
        hooks.checkCancel();
        const states: DraftState[] = [{ ids: ids.slice(s0, s1), embeds: x.subarray(s0 * h, s1 * h), masked }];
        if (prev) states.push(...draftStates(prev, states[0], s, k - 1));
        // Greedy decoding reads only the masked rows; sampling draws on every row, as the reference does, so that
        // the random stream advances identically.
        const wants = states.map((st) => (sampling ? range(0, B) : range(0, B).filter((r) => st.masked[r])));
        const hidden = await strategy.denoise(s0, s1, states.map((st, g) => ({ embeds: st.embeds, want: wants[g] })));
        forwards.denoise++;
        const head = await ctx.timed('decodeMs', () => model.head(hidden, sampling));
        const outs = splitHead(head, wants, sampling);
        out = outs[0];
        drafts = states.slice(1).map((st, g) => ({ ids: st.ids, out: outs[g + 1] }));
        if (k > 1) forwards.draftsVerified = (forwards.draftsVerified ?? 0) + drafts.length;
      }

      // The step itself, exactly as one state per forward would take it.
      const t = transition(out, masked, schedule[s]);
      for (const r of t.picked) {
        const q = s0 + r;
        ids[q] = t.x0[r];
        model.embedRow(t.x0[r], x, q * h);
      }
      hooks.onStep?.(b - firstBlock, s, generatedSlice(ids, s0, s1, L, p.genLen));
      prev = t;
      // Verification: the next draft is accepted when the step just taken reached exactly its state; its output from
      // the verifying pass is then the output of the current state. Otherwise the remaining drafts are dropped.
      const next = drafts.shift();
      if (next) forwards.draftsChecked!++;
      if (next && sameState(next.ids, ids, s0, s1, L)) {
        out = next.out;
        forwards.draftsAccepted = (forwards.draftsAccepted ?? 0) + 1;
      } else {
        out = null;
        drafts = [];
      }
    }

    // A block that still holds masks after S+1 iterations is never committed (the reference leaves a hole).
    hooks.onBlock?.(b - firstBlock, generatedSlice(ids, L, s1, L, p.genLen));
    if (s1 > L && ids.subarray(Math.max(L, s0), s1).includes(p.eosId)) break;
  }
  // A pending fused commit at the end is simply dropped: nothing would read those K/V.

  return { outputIds: Array.from(ids.subarray(L, L + p.genLen)), forwards };
}

/** The head's outputs for one state's wanted rows (`logits` only when sampling). */
interface StepOutput {
  want: readonly number[];
  ids: Int32Array;
  probs: Float32Array;
  logits?: Float32Array;
}

/** One step's predictions per block row (x0; conf -Infinity on rows that were not masked) and the rows it unmasked. */
interface Transition {
  x0: Int32Array;
  conf: Float64Array;
  picked: number[];
}

/** A state of the block: ids (block offsets, MASK where masked), its rows' embeddings and which rows are masked. */
interface DraftState {
  ids: Int32Array;
  embeds: Float32Array;
  masked: boolean[];
}

/** Splits a pass's head output into its states' outputs, in the order the states' wanted rows were asked. */
function splitHead(head: HeadOutput, wants: readonly (readonly number[])[], sampling: boolean): StepOutput[] {
  let at = 0;
  const v = sampling ? head.logits!.length / Math.max(1, head.ids.length) : 0;
  return wants.map((want) => {
    const n = want.length;
    const o: StepOutput = { want, ids: head.ids.subarray(at, at + n), probs: head.probs.subarray(at, at + n), logits: sampling ? head.logits!.subarray(at * v, (at + n) * v) : undefined };
    at += n;
    return o;
  });
}

/** Whether the block's generated rows hold exactly `draft` (block offsets). */
function sameState(draft: Int32Array, ids: Int32Array, s0: number, s1: number, promptLen: number): boolean {
  for (let i = Math.max(s0, promptLen); i < s1; i++) if (ids[i] !== draft[i - s0]) return false;
  return true;
}

function chooseStrategy(ctx: StrategyContext, p: DiffusionParams, cache: KvCache | null, reusedLen: number): ForwardStrategy {
  if (p.noKvCache || !cache) return fullRecompute(ctx);
  return p.fusedCommit ? fusedCommit(ctx, cache, reusedLen) : cachedUnfused(ctx, cache, reusedLen);
}

function generatedSlice(ids: Int32Array, from: number, to: number, promptLen: number, genLen: number): number[] {
  return Array.from(ids.subarray(Math.max(from, promptLen), Math.min(to, promptLen + genLen)));
}
