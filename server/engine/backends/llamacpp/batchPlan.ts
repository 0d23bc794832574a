import { checkPatternRows, type AttentionPattern } from '../../attention';

/**
 * llama.cpp's form of one decoder pass: rows with sequence ids over a unified KV cache whose committed cells all
 * belong to sequence 0. A row attends to the cells that carry its first (primary) sequence id, so
 * - block-causal (K blocks): the rows of block b carry K−1−b first, then 0 … K−2−b; a cell of block b' carries
 *   0 … K−1−b', so row b sees block b' iff b' ≤ b, and the last block is sequence 0 itself;
 * - open: the shared rows carry 0 first, then every group's id; group g carries its own id only (group 0 is
 *   sequence 0 when nothing is shared), so groups see the shared rows and themselves, never each other.
 * The cache's cells are tagged with every primary id used (`llama_memory_seq_cp` only tags cells in a unified
 * cache) before the pass; afterwards everything from the first uncommitted position on is removed and the kept
 * cells go back to sequence 0 alone (`llama_memory_seq_keep(0)`).
 *
 * Every check that llama.cpp would otherwise answer with an assert (which aborts the process) or a refusal is made
 * here first: rows per micro-batch, sequence ids, positions consecutive from the cache's end, cells left.
 */
export interface PassChunk {
  /** First row of the pass in this chunk, and how many. */
  start: number;
  rows: number;
  /** Sequence ids per row of the chunk, primary first. */
  seqIds: number[][];
  /** Sequences (besides 0) the cache's cells must carry before the chunk. */
  extraSeqs: number;
  /** Plain causal attention (block length 1): every row in sequence 0, the library's causal mask. */
  causal: boolean;
}

export interface PassLimits {
  /** Rows one llama_decode may take (n_batch = n_ubatch). */
  maxRows: number;
  /** Sequence ids available (n_seq_max). */
  maxSeqs: number;
  /** KV cells of the context (n_ctx). */
  cells: number;
}

export class BatchRefusedError extends Error {
  override readonly name = 'BatchRefusedError';
}

/**
 * Splits a pass into library calls and checks it. Block-causal passes split at block boundaries when they exceed
 * the micro-batch (each chunk then attends to the earlier ones through the cache, which is the same attention); an
 * open pass must fit one call.
 */
export function planPass(pattern: AttentionPattern, positions: readonly number[], past: number, commitRows: number, limits: PassLimits): PassChunk[] {
  const n = positions.length;
  if (n === 0) throw new BatchRefusedError('a decoder pass needs at least one row');
  try {
    checkPatternRows(pattern, n);
  } catch (err) {
    throw new BatchRefusedError((err as Error).message);
  }
  if (!(Number.isInteger(commitRows) && commitRows >= 0 && commitRows <= n)) throw new BatchRefusedError(`commitRows ${commitRows} for a pass of ${n} rows`);
  for (const p of positions) if (!Number.isInteger(p) || p < 0) throw new BatchRefusedError(`position ${p} is not a non-negative integer`);
  if (pattern.kind === 'blockCausal') {
    consecutive(positions, 0, n, past, 'the rows');
    if (past + n > limits.cells) throw new BatchRefusedError(`positions up to ${past + n} exceed the context of ${limits.cells}`);
    return planBlockCausal(pattern.blockLen, positions, limits);
  }
  const { shared, groups } = pattern;
  if (commitRows > shared && !(shared === 0 && groups.length >= 1 && commitRows <= groups[0])) {
    throw new BatchRefusedError(`commitRows ${commitRows} reaches past the shared rows (${shared}) of an open pass`);
  }
  if (n > limits.maxRows) throw new BatchRefusedError(`an open pass of ${n} rows exceeds the micro-batch of ${limits.maxRows}`);
  if (past + n > limits.cells) throw new BatchRefusedError(`${past + n} cells exceed the context of ${limits.cells}`);
  consecutive(positions, 0, shared, past, 'the shared rows');
  // Group g's ids: when nothing is shared, group 0 is sequence 0 itself (a plain denoising step or commit).
  const base = shared > 0 ? 1 : 0;
  const seqCount = base + groups.length;
  if (seqCount > limits.maxSeqs) throw new BatchRefusedError(`${groups.length} groups need ${seqCount} sequences; the context has ${limits.maxSeqs}`);
  const seqIds: number[][] = [];
  const all = [0, ...groups.map((_, g) => base + g).filter((s) => s !== 0)];
  for (let i = 0; i < shared; i++) seqIds.push(all);
  let row = shared;
  groups.forEach((len, g) => {
    consecutive(positions, row, row + len, past + shared, `group ${g}`);
    for (let i = 0; i < len; i++) seqIds.push([base + g]);
    row += len;
  });
  return [{ start: 0, rows: n, seqIds, extraSeqs: seqCount - 1, causal: false }];
}

function planBlockCausal(blockLen: number, positions: readonly number[], limits: PassLimits): PassChunk[] {
  const n = positions.length;
  const block = (i: number) => Math.floor(positions[i] / blockLen);
  if (blockLen === 1) {
    const chunks: PassChunk[] = [];
    for (let s = 0; s < n; s += limits.maxRows) {
      const rows = Math.min(limits.maxRows, n - s);
      chunks.push({ start: s, rows, seqIds: Array.from({ length: rows }, () => [0]), extraSeqs: 0, causal: true });
    }
    return chunks;
  }
  const chunks: PassChunk[] = [];
  let s = 0;
  while (s < n) {
    // Take whole blocks while they fit the micro-batch and the sequence ids.
    let e = s;
    let blocks = 0;
    while (e < n) {
      let be = e;
      while (be < n && block(be) === block(e)) be++;
      if (be - s > limits.maxRows || blocks + 1 > limits.maxSeqs) break;
      e = be;
      blocks++;
    }
    if (e === s) throw new BatchRefusedError(`a block of ${blockLen} rows exceeds the micro-batch of ${limits.maxRows}`);
    const first = block(s);
    const seqIds: number[][] = [];
    for (let i = s; i < e; i++) {
      const b = block(i) - first;
      const primary = blocks - 1 - b;
      seqIds.push([primary, ...Array.from({ length: primary }, (_, k) => k)]);
    }
    chunks.push({ start: s, rows: e - s, seqIds, extraSeqs: blocks - 1, causal: false });
    s = e;
  }
  return chunks;
}

/** Rows [from, to) must sit at positions start, start+1, …: llama.cpp requires each sequence to continue its cells. */
function consecutive(positions: readonly number[], from: number, to: number, start: number, what: string): void {
  for (let i = from; i < to; i++) {
    if (positions[i] !== start + i - from) {
      throw new BatchRefusedError(`${what} must sit at consecutive positions from ${start} (row ${i} is at ${positions[i]})`);
    }
  }
}
