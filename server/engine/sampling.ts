import type { Xoshiro128 } from './rng';

export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
}

/**
 * Samples one token from a row of logits: divide by temperature, keep the top-k (every value ≥ the k-th largest),
 * then top-p (drop tokens whose cumulative probability, shifted right by one, exceeds p: the first always stays),
 * and draw from the softmax of what is left. The confidence is that filtered distribution's probability of the
 * drawn token, as the QwenVL variant computes it.
 */
export function sampleRow(logits: Float32Array, p: SamplingParams, rng: Xoshiro128): { id: number; prob: number } {
  const v = logits.length;
  const l = new Float64Array(v);
  for (let i = 0; i < v; i++) l[i] = logits[i] / p.temperature;
  if (p.topK > 0 && p.topK < v) {
    const kth = kthLargest(l, p.topK);
    for (let i = 0; i < v; i++) if (l[i] < kth) l[i] = -Infinity;
  }
  if (p.topP < 1) applyTopP(l, p.topP);
  let max = -Infinity;
  for (let i = 0; i < v; i++) if (l[i] > max) max = l[i];
  let sum = 0;
  for (let i = 0; i < v; i++) {
    const e = l[i] === -Infinity ? 0 : Math.exp(l[i] - max);
    l[i] = e;
    sum += e;
  }
  let u = rng.nextFloat() * sum;
  let id = -1;
  for (let i = 0; i < v; i++) {
    if (l[i] === 0) continue;
    id = i;
    u -= l[i];
    if (u < 0) break;
  }
  return { id, prob: Math.fround(l[id] / sum) };
}

/** softmax(logits)[id] of the unmodified logits: the Qwen (SigLIP) code's confidence when sampling. */
export function rawSoftmaxProb(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.fround(Math.exp(logits[id] - max) / sum);
}

function kthLargest(l: Float64Array, k: number): number {
  const sorted = Float64Array.from(l).sort();
  return sorted[sorted.length - k];
}

function applyTopP(l: Float64Array, topP: number): void {
  const order = Array.from(l.keys()).filter((i) => l[i] !== -Infinity);
  order.sort((a, b) => l[b] - l[a] || a - b);
  const max = l[order[0]];
  let total = 0;
  for (const i of order) total += Math.exp(l[i] - max);
  let cum = 0;
  for (let r = 0; r < order.length; r++) {
    const i = order[r];
    const prob = Math.exp(l[i] - max) / total;
    // Shifted right by one: a token is removed only if the mass *before* it already exceeds p.
    if (r > 0 && cum > topP) l[i] = -Infinity;
    cum += prob;
  }
}
