import { open } from './attention';
import type { DiffusionModel } from './diffusionModel';
import { range } from './rope';

/**
 * Choosing K, the denoising states per verifying forward, from what the device makes cheap.
 *
 * Model: each drafted state after the first is reached by the real steps with probability `a` given that the one
 * before it was (drafts are consecutive steps, so one rejection drops the rest), so a pass over K states advances
 * E(K) = 1 + a + … + a^(K-1) = (1 - a^K) / (1 - a) steps. A pass over K·B rows costs c(K) times a pass over B rows
 * (measured). Tokens per second are proportional to steps per second, E(K) / c(K): K is the candidate maximising it,
 * and 1 unless another beats it by a clear margin (timing noise must not buy a slower K). On a CPU c(K) ≈ K, which no
 * acceptance rate below 1 pays for; on a GPU a forward is bound by reading the weights, c(K) stays near 1 for small K.
 */
export const VERIFY_CANDIDATES = [1, 2, 4, 8] as const;
/**
 * The acceptance rate assumed before a process has seen any. The trained default model accepts 0.98–0.99 of the
 * drafts it checks with static remasking (600 questions; docs/performance.md, "Verified multi-step decoding"); a real
 * model's rate is not known here, so the prior sits below that and the process's own rate takes over as it decodes.
 */
export const DEFAULT_MODEL_ACCEPTANCE = 0.9;
/** A K > 1 must promise this much more than K = 1. */
const MARGIN = 1.1;

/** c(K) per candidate K (c(1) = 1), as measured on this device and model. */
export type RowCost = ReadonlyMap<number, number>;

export interface VerifyChoice {
  k: number;
  /** Why, in words: the measured costs and the acceptance rate used. */
  reason: string;
}

/** Expected steps per pass over k states at acceptance rate a. */
export function expectedSteps(k: number, a: number): number {
  return a >= 1 ? k : (1 - a ** k) / (1 - a);
}

export function chooseVerifySteps(cost: RowCost, acceptance: number): VerifyChoice {
  let best = 1;
  let bestRate = 1;
  for (const k of VERIFY_CANDIDATES) {
    const c = cost.get(k);
    if (c === undefined || k === 1) continue;
    const rate = expectedSteps(k, acceptance) / c;
    if (rate > bestRate * (best === 1 ? MARGIN : 1)) {
      best = k;
      bestRate = rate;
    }
  }
  const costs = [...cost].map(([k, c]) => `c(${k}) = ${c.toFixed(2)}`).join(', ');
  return { k: best, reason: `auto: ${costs}; acceptance ${acceptance.toFixed(2)} → ${bestRate.toFixed(2)}× the steps per second of K = 1` };
}

/**
 * Measures c(K): the wall time of a denoising pass (decoder and head) over K groups of `blockLen` rows against one
 * group, alternating the candidates over a few rounds and keeping each one's fastest. Stops early when K = 2 already
 * costs nearly twice K = 1 (a CPU: larger K cost more still). The model's cache is not touched (no past).
 */
export async function measureRowCost(model: DiffusionModel, blockLen: number, maskId: number, rounds = 3): Promise<RowCost> {
  const h = model.hiddenSize;
  const row = new Float32Array(h);
  model.embedRow(maskId, row, 0);
  const pass = async (k: number): Promise<number> => {
    const n = k * blockLen;
    const embeds = new Float32Array(n * h);
    for (let r = 0; r < n; r++) embeds.set(row, r * h);
    const groups = Array.from({ length: k }, () => blockLen);
    const t0 = performance.now();
    const hidden = await model.decode(embeds, range(0, n).map((r) => r % blockLen), open(0, ...groups), null, { commitRows: 0, outputRows: range(0, n) });
    await model.head(hidden!, false);
    return performance.now() - t0;
  };
  await pass(1); // warm-up: first-run allocations and kernel choices
  const best = new Map<number, number>();
  const time = async (ks: readonly number[]) => {
    for (let i = 0; i < rounds; i++) {
      for (const k of ks) best.set(k, Math.min(best.get(k) ?? Infinity, await pass(k)));
    }
  };
  await time([1, 2]);
  const ratio = (k: number) => best.get(k)! / Math.max(1e-6, best.get(1)!);
  if (ratio(2) < 1.8) await time(VERIFY_CANDIDATES.filter((k) => k > 2));
  return new Map([...best.keys()].sort((a, b) => a - b).map((k) => [k, ratio(k)]));
}

/**
 * The acceptance rate this process has seen (drafts reached per draft the real steps checked), starting from a prior
 * worth `priorWeight` checks so a few early questions do not swing K.
 */
export class AcceptanceRate {
  private accepted = 0;
  private checked = 0;

  constructor(
    private prior: number,
    private priorWeight = 20,
  ) {}

  add(accepted: number, checked: number): void {
    this.accepted += accepted;
    this.checked += checked;
  }

  get value(): number {
    return (this.accepted + this.prior * this.priorWeight) / (this.checked + this.priorWeight);
  }
}
