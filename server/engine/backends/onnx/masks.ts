import type { AttentionPattern } from '../../attention';

/** ONNX Runtime's form of an attention pattern: an additive mask [rows, past + rows], 0 = attend, -Infinity = not. */
export function additiveMask(p: AttentionPattern, positions: ArrayLike<number>, past: number): Float32Array {
  return p.kind === 'blockCausal' ? blockCausalMask(positions, past, p.blockLen) : openMask(p.shared, p.groups, past);
}

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

/**
 * Shared rows [0, shared) see the cache and each other; each following group sees the cache, the shared rows and
 * itself. With one group after a finished block this is the fused commit: the finished rows see exactly what a
 * commit pass of their own sees, so their K/V are identical, and the new rows see them as after that commit.
 */
function openMask(shared: number, groups: readonly number[], past: number): Float32Array {
  const rows = shared + groups.reduce((a, b) => a + b, 0);
  const cols = past + rows;
  const mask = new Float32Array(rows * cols);
  for (let i = 0; i < shared; i++) mask.fill(-Infinity, i * cols + past + shared, (i + 1) * cols);
  let g0 = shared;
  for (const g of groups) {
    for (let i = g0; i < g0 + g; i++) {
      mask.fill(-Infinity, i * cols + past + shared, i * cols + past + g0);
      mask.fill(-Infinity, i * cols + past + g0 + g, (i + 1) * cols);
    }
    g0 += g;
  }
  return mask;
}
