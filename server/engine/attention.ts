/**
 * Which rows of one decoder pass attend to which, said in the loop's terms. Every row always sees the whole committed
 * cache. Each backend builds its own form: ONNX Runtime an additive mask over [past + rows] (backends/onnx/masks.ts),
 * llama.cpp causal/non-causal batches and sequence ids over its unified cache.
 */
export type AttentionPattern =
  /**
   * Consecutive positions of whole blocks (the prompt's prefill, a full recompute): row i sees row j iff
   * block(j) ≤ block(i), blocks `blockLen` wide from absolute position 0 (blockLen 1 is plain causal attention).
   */
  | { readonly kind: 'blockCausal'; readonly blockLen: number }
  /**
   * Rows [0, shared) see each other (a finished block whose K/V are being committed: exactly what a commit pass of
   * its own sees); then `groups` of rows, each seeing the shared rows and itself only (one denoising state per group,
   * block-diagonal among groups). A plain denoising step is `{ shared: 0, groups: [B] }`, a plain commit
   * `{ shared: B, groups: [] }`, a fused commit `{ shared: B, groups: [B] }`.
   */
  | { readonly kind: 'open'; readonly shared: number; readonly groups: readonly number[] };

export const blockCausal = (blockLen: number): AttentionPattern => ({ kind: 'blockCausal', blockLen });
export const open = (shared: number, ...groups: number[]): AttentionPattern => ({ kind: 'open', shared, groups });

/** Throws unless the pattern covers exactly `rows` rows (every backend checks before it builds its form). */
export function checkPatternRows(p: AttentionPattern, rows: number): void {
  if (p.kind === 'blockCausal') {
    if (!(Number.isInteger(p.blockLen) && p.blockLen >= 1)) throw new Error(`attention pattern: block length ${p.blockLen}`);
    return;
  }
  const covered = p.shared + p.groups.reduce((a, b) => a + b, 0);
  if (covered !== rows || p.shared < 0 || p.groups.some((g) => !(Number.isInteger(g) && g > 0))) {
    throw new Error(`attention pattern covers ${covered} rows (shared ${p.shared}, groups [${p.groups.join(', ')}]) for a pass of ${rows}`);
  }
}
