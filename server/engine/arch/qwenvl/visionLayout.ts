import type { VisionDims } from '../../manifest';

/**
 * Inputs the vision graph needs besides the pixels, for one image (t = 1): Qwen2.5-VL's window permutation, the
 * attention masks it implies, 2-D rotary tables in window order, and the index that restores raster order.
 */
export interface VisionLayout {
  gridH: number;
  gridW: number;
  /** N = gridH·gridW patches. */
  numPatches: number;
  /** Merged-token ids in window order (length N/4). */
  windowIndex: Int32Array;
  /** Window boundaries in patch rows, consecutive duplicates removed, starting at 0. */
  cuWindowSeqlens: number[];
  /** argsort(windowIndex): gathers merged tokens back to raster order. */
  restoreIndex: BigInt64Array;
}

/** Merge units (2×2 patches) per window side: window / merge / patch (112/2/14 = 4). */
export function windowSide(v: VisionDims): number {
  return Math.floor(v.windowSize / v.spatialMergeSize / v.patchSize);
}

export function visionLayout(gridThw: [number, number, number], v: VisionDims): VisionLayout {
  const [t, gh, gw] = gridThw;
  if (t !== 1) throw new Error(`only single-frame images are supported (grid_t ${t})`);
  const m = v.spatialMergeSize;
  const lh = gh / m;
  const lw = gw / m;
  const side = windowSide(v);
  const unit = m * m;
  // The reference pads by side − (l mod side): a whole empty window when l is divisible; empty windows vanish.
  const nwh = Math.floor((lh + side - (lh % side)) / side);
  const nww = Math.floor((lw + side - (lw % side)) / side);
  const windowIndex: number[] = [];
  const cu = [0];
  for (let wy = 0; wy < nwh; wy++) {
    for (let wx = 0; wx < nww; wx++) {
      let count = 0;
      for (let y = wy * side; y < Math.min((wy + 1) * side, lh); y++) {
        for (let x = wx * side; x < Math.min((wx + 1) * side, lw); x++) {
          windowIndex.push(y * lw + x);
          count++;
        }
      }
      const next = cu[cu.length - 1] + count * unit;
      if (next !== cu[cu.length - 1]) cu.push(next);
    }
  }
  const restore = new BigInt64Array(windowIndex.length);
  windowIndex.forEach((id, k) => (restore[id] = BigInt(k)));
  return { gridH: gh, gridW: gw, numPatches: gh * gw, windowIndex: Int32Array.from(windowIndex), cuWindowSeqlens: cu, restoreIndex: restore };
}

/** Additive [N, N] mask: 0 inside each window segment, -Infinity across. */
export function windowMask(layout: VisionLayout): Float32Array {
  const n = layout.numPatches;
  const mask = new Float32Array(n * n).fill(-Infinity);
  const cu = layout.cuWindowSeqlens;
  for (let w = 0; w + 1 < cu.length; w++) {
    for (let r = cu[w]; r < cu[w + 1]; r++) mask.fill(0, r * n + cu[w], r * n + cu[w + 1]);
  }
  return mask;
}

/** Patch rows of the largest window: (window / patch)² (8×8 = 64 for Qwen2.5-VL's 112-pixel windows). */
export function windowSlots(v: VisionDims): number {
  const side = windowSide(v) * v.spatialMergeSize;
  return side * side;
}

/**
 * The batched layout of window attention: window w's rows (contiguous in window order) go to slots
 * [w·slots, w·slots + len), the rest of its slots repeat its first row and are masked as keys.
 *   gather  [W·slots]  row of each slot      scatter [N]  slot of each row      bias [W, 1, 1, slots]  0 / −∞
 */
export function windowBatches(layout: VisionLayout, v: VisionDims): { gather: BigInt64Array; scatter: BigInt64Array; bias: Float32Array; windows: number } {
  const slots = windowSlots(v);
  const cu = layout.cuWindowSeqlens;
  const windows = cu.length - 1;
  const gather = new BigInt64Array(windows * slots);
  const scatter = new BigInt64Array(layout.numPatches);
  const bias = new Float32Array(windows * slots).fill(-Infinity);
  for (let w = 0; w < windows; w++) {
    const len = cu[w + 1] - cu[w];
    if (len > slots) throw new Error(`a vision window holds ${len} patches, more than ${slots}`);
    for (let j = 0; j < slots; j++) gather[w * slots + j] = BigInt(cu[w] + (j < len ? j : 0));
    for (let j = 0; j < len; j++) {
      scatter[cu[w] + j] = BigInt(w * slots + j);
      bias[w * slots + j] = 0;
    }
  }
  return { gather, scatter, bias, windows };
}

/**
 * Reorders processor rows [N, rowLen] (groups of `unit` rows per merge unit) into window order. Used for both the
 * pixel patches and the rotary tables.
 */
export function permuteUnits(rows: Float32Array, rowLen: number, unit: number, windowIndex: Int32Array): Float32Array {
  const out = new Float32Array(rows.length);
  const block = unit * rowLen;
  windowIndex.forEach((src, dst) => out.set(rows.subarray(src * block, (src + 1) * block), dst * block));
  return out;
}

/**
 * 2-D rotary cos/sin [N, headDim] in processor row order, float32 (the converted model computes in float32, so the
 * reference's fp16 inv_freq quirk does not apply). Per patch: [row·inv (headDim/4), col·inv (headDim/4)] twice.
 */
export function visionRotary(layout: VisionLayout, v: VisionDims): { cos: Float32Array; sin: Float32Array } {
  const d = v.headDim;
  const dim = d / 2;
  const q = dim / 2;
  const inv = new Float32Array(q);
  for (let k = 0; k < q; k++) inv[k] = Math.fround(1 / Math.fround(Math.pow(10000, Math.fround(Math.fround(2 * k) / dim))));
  const m = v.spatialMergeSize;
  const n = layout.numPatches;
  const cos = new Float32Array(n * d);
  const sin = new Float32Array(n * d);
  const lw = layout.gridW / m;
  for (let row = 0; row < n; row++) {
    // Processor order: merge unit (bh, bw) in raster order, then (mh, mw) inside it.
    const u = Math.floor(row / (m * m));
    const inner = row % (m * m);
    const hp = Math.floor(u / lw) * m + Math.floor(inner / m);
    const wp = (u % lw) * m + (inner % m);
    const base = row * d;
    for (let k = 0; k < q; k++) {
      const a = Math.fround(hp * inv[k]);
      const b = Math.fround(wp * inv[k]);
      for (const off of [0, dim]) {
        cos[base + off + k] = Math.cos(a);
        sin[base + off + k] = Math.sin(a);
        cos[base + off + q + k] = Math.cos(b);
        sin[base + off + q + k] = Math.sin(b);
      }
    }
  }
  return { cos, sin };
}
