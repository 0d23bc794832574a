/**
 * How many masked positions each denoising step of a block unmasks: S+1 entries, indexed by step (not by the
 * number of masks left). n[s] = ⌊B/S⌋ + (1 if s < B mod S). The extra last entry is the step at which the
 * official loop finds the block complete and commits it.
 */
export function transferSchedule(blockSize: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const base = Math.floor(blockSize / steps);
  const extra = blockSize % steps;
  const n: number[] = [];
  for (let s = 0; s <= steps; s++) n.push(base + (s < extra ? 1 : 0));
  return n;
}

/** Block layout of one generation: blocks are aligned to absolute position 0, not to the start of generation. */
export interface BlockLayout {
  /** Prompt length L (text tokens + image tokens). */
  promptLen: number;
  genLen: number;
  /** Rows per block; equals `totalLen` in full-diffusion mode. */
  blockLen: number;
  /** T: every position that takes part (≥ L + G). */
  totalLen: number;
  numBlocks: number;
  /** P: prompt positions in full blocks, encoded once by the prefill. */
  prefillLen: number;
  /** B ≥ L + G: the whole sequence is one bidirectional block (no prefill). */
  fullDiffusion: boolean;
}

export function blockLayout(promptLen: number, genLen: number, blockSize: number): BlockLayout {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
  if (!Number.isInteger(genLen) || genLen < 1) throw new RangeError(`gen length must be a positive integer, got ${genLen}`);
  if (blockSize >= promptLen + genLen) {
    const t = promptLen + genLen;
    return { promptLen, genLen, blockLen: t, totalLen: t, numBlocks: 1, prefillLen: 0, fullDiffusion: true };
  }
  const numBlocks = Math.ceil((promptLen + genLen) / blockSize);
  return {
    promptLen,
    genLen,
    blockLen: blockSize,
    totalLen: numBlocks * blockSize,
    numBlocks,
    prefillLen: Math.floor(promptLen / blockSize) * blockSize,
    fullDiffusion: false,
  };
}
