import type { RemaskingStrategy } from './api';

/**
 * Which masked positions of a block get their predicted token this step.
 *
 * `conf[i]` is the confidence of row i's prediction; only rows with `masked[i]` are candidates. Ties in confidence
 * are broken by the LOWEST position: float32 softmax of a confident row is often exactly 1.0, and torch's topk tie
 * order is implementation-defined, so we pick the deterministic order that CUDA's gather-top-k also favours.
 *
 * static: the `n` most confident. dynamic: every candidate above `threshold` if there are at least `n` of them
 * (possibly more than n), else the `n` most confident. Returns row indices in ascending order.
 */
export function selectTransfers(
  conf: ArrayLike<number>,
  masked: ArrayLike<boolean>,
  n: number,
  strategy: RemaskingStrategy,
  threshold: number,
): number[] {
  const candidates: number[] = [];
  for (let i = 0; i < masked.length; i++) if (masked[i]) candidates.push(i);
  if (strategy === 'dynamic') {
    const high = candidates.filter((i) => conf[i] > threshold);
    if (high.length >= n) return high;
  }
  const k = Math.min(n, candidates.length);
  if (k <= 0) return [];
  // Stable sort keeps ascending position among equal confidences.
  const ranked = candidates.slice().sort((a, b) => (conf[b] > conf[a] ? 1 : conf[b] < conf[a] ? -1 : a - b));
  return ranked.slice(0, k).sort((a, b) => a - b);
}
