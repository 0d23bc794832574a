/** Additive attention masks for the decoder graph: [rows, past + rows], 0 = attend, -Infinity = not. */

/**
 * Block-causal mask for rows at absolute `positions` (the sequence's own rows) after `past` cached positions that
 * every row may see: row i sees row j iff block(j) ≤ block(i). Blocks are `blockLen` wide from position 0.
 */
export function blockCausalMask(positions: ArrayLike<number>, past: number, blockLen: number): Float32Array {
  const s = positions.length;
  const cols = past + s;
  const mask = new Float32Array(s * cols);
  for (let i = 0; i < s; i++) {
    const bi = Math.floor(positions[i] / blockLen);
    for (let j = 0; j < s; j++) if (Math.floor(positions[j] / blockLen) > bi) mask[i * cols + past + j] = -Infinity;
  }
  return mask;
}

/** All-zero mask: a block attends to the whole cache and to itself. */
export function openMask(rows: number, past: number): Float32Array {
  return new Float32Array(rows * (past + rows));
}

/**
 * Fused commit + denoise: rows [0, done) are the finished block (its K/V are being committed), rows [done, done+next)
 * the next block's first denoising step. Finished rows see the cache and themselves only — exactly what a separate
 * commit pass sees — so their K/V are identical; the new rows see everything, as they would after that commit.
 */
export function fusedCommitMask(done: number, next: number, past: number): Float32Array {
  const s = done + next;
  const cols = past + s;
  const mask = new Float32Array(s * cols);
  for (let i = 0; i < done; i++) mask.fill(-Infinity, i * cols + past + done, (i + 1) * cols);
  return mask;
}
