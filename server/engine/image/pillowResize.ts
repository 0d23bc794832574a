/**
 * Pillow's BICUBIC resample (libImaging Resample.c), re-implemented so that our pixels are bit-identical to what the
 * official Qwen2-VL image processor (PIL `Image.resize`) produces. sharp's kernels differ by up to hundreds of levels
 * when upscaling, so they cannot be used here.
 *
 * Pillow's scheme: separable, horizontal pass then vertical; a = -0.5 cubic kernel whose support is widened by the
 * downscale factor (antialiasing); float64 weights normalised to sum 1, then 22-bit fixed point; a uint8 intermediate.
 */

/** An 8-bit interleaved RGB image. */
export interface RgbImage {
  width: number;
  height: number;
  /** width·height·3 bytes, row-major, RGB interleaved. */
  data: Uint8Array;
}

const PRECISION_BITS = 32 - 8 - 2;
const ROUNDING = 1 << (PRECISION_BITS - 1);
const FIXED_ONE = 1 << PRECISION_BITS;
const BICUBIC_SUPPORT = 2;

/** Keys' cubic with a = -0.5, as Pillow defines it. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output index: first input index, tap count, and `ksize` fixed-point weights. */
export interface Coefficients {
  ksize: number;
  /** [first, count] per output index. */
  bounds: Int32Array;
  /** outSize·ksize 22-bit fixed-point weights (unused tail entries are 0). */
  weights: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the whole input range (no crop box). */
export function bicubicCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  // Pillow multiplies by the reciprocal rather than dividing; the rounding differs, so do the same.
  const ss = 1 / filterscale;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C casts truncate toward zero; negative values are clamped to 0 right after, so trunc is enough.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < count; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    const base = xx * ksize;
    for (let x = 0; x < count; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      weights[base + x] = Math.trunc(w < 0 ? -0.5 + w * FIXED_ONE : 0.5 + w * FIXED_ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

/**
 * Pillow's clip8. Accumulators are int32 as in C: |pixel·weight| sums stay below 2^31 because the weights sum to
 * 2^22 with small negative lobes, and `| 0` keeps V8 on its integer path.
 */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Multiply-adds done by the bicubic passes since the process started: the work an image costs, independent of the
 * machine's speed or load (tests bound it for inputs that once took seconds).
 */
export const resampleWork = { multiplyAdds: 0 };

/** Taps summed over output indices [from, to). */
function tapsOf(c: Coefficients, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n += c.bounds[i * 2 + 1];
  return n;
}

/** Horizontal pass of one RGB row starting at `rowBase` in `data`, output columns [from, to), written at `o`. */
function horizontalRow(data: Uint8Array, rowBase: number, out: Uint8Array, o: number, from: number, to: number, c: Coefficients): void {
  const { ksize, bounds, weights } = c;
  for (let xx = from; xx < to; xx++) {
    const count = bounds[xx * 2 + 1];
    const kBase = xx * ksize;
    let s0 = ROUNDING;
    let s1 = ROUNDING;
    let s2 = ROUNDING;
    let p = rowBase + bounds[xx * 2] * 3;
    for (let x = 0; x < count; x++, p += 3) {
      const w = weights[kBase + x];
      s0 = (s0 + data[p] * w) | 0;
      s1 = (s1 + data[p + 1] * w) | 0;
      s2 = (s2 + data[p + 2] * w) | 0;
    }
    out[o++] = clip8(s0);
    out[o++] = clip8(s1);
    out[o++] = clip8(s2);
  }
}

/**
 * Horizontal pass over input rows [yFirst, yFirst + rows). A row equal to the one before it (flat backgrounds, or a
 * thin image upscaled across: comparing costs one read of the input row) takes the previous row's output.
 */
function resampleHorizontal(src: RgbImage, outWidth: number, yFirst: number, rows: number, c: Coefficients): Uint8Array {
  const outStride = outWidth * 3;
  const out = new Uint8Array(outStride * rows);
  const inStride = src.width * 3;
  const rowsOf = Buffer.from(src.data.buffer, src.data.byteOffset, src.data.byteLength);
  let computed = 0;
  for (let y = 0; y < rows; y++) {
    const base = (y + yFirst) * inStride;
    if (y > 0 && rowsOf.compare(rowsOf, base - inStride, base, base, base + inStride) === 0) {
      out.copyWithin(y * outStride, (y - 1) * outStride, y * outStride);
      continue;
    }
    horizontalRow(src.data, base, out, y * outStride, 0, outWidth, c);
    computed++;
  }
  resampleWork.multiplyAdds += computed * tapsOf(c, 0, outWidth) * 3;
  return out;
}

/**
 * Vertical pass. Taps are taken four at a time over whole rows (sequential streams); short kernels (upscaling: at most
 * 4 taps) finish in one sweep, longer ones accumulate in an int32 row. Missing taps get weight 0.
 */
function resampleVertical(src: RgbImage, outHeight: number, c: Coefficients, yShift: number): Uint8Array {
  const stride = src.width * 3;
  const out = new Uint8Array(stride * outHeight);
  const acc = new Int32Array(stride);
  const { ksize, bounds, weights } = c;
  const d = src.data;
  resampleWork.multiplyAdds += stride * tapsOf(c, 0, outHeight);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2] - yShift;
    const count = bounds[yy * 2 + 1];
    const kBase = yy * ksize;
    const o = yy * stride;
    acc.fill(ROUNDING);
    for (let t = 0; t < count; t += 4) {
      const r0 = (ymin + t) * stride;
      const w0 = weights[kBase + t];
      const r1 = t + 1 < count ? r0 + stride : r0;
      const w1 = t + 1 < count ? weights[kBase + t + 1] : 0;
      const r2 = t + 2 < count ? r0 + 2 * stride : r0;
      const w2 = t + 2 < count ? weights[kBase + t + 2] : 0;
      const r3 = t + 3 < count ? r0 + 3 * stride : r0;
      const w3 = t + 3 < count ? weights[kBase + t + 3] : 0;
      if (t + 4 >= count) {
        for (let x = 0; x < stride; x++) {
          out[o + x] = clip8((acc[x] + d[r0 + x] * w0 + d[r1 + x] * w1 + d[r2 + x] * w2 + d[r3 + x] * w3) | 0);
        }
      } else {
        for (let x = 0; x < stride; x++) acc[x] = (acc[x] + d[r0 + x] * w0 + d[r1 + x] * w1 + d[r2 + x] * w2 + d[r3 + x] * w3) | 0;
      }
    }
  }
  return out;
}

/** `PIL.Image.resize((width, height), Image.BICUBIC)` on an RGB image. The same size returns an exact copy. */
export function resizeBicubic(src: RgbImage, width: number, height: number): RgbImage {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`resize target must be positive integers, got ${width}×${height}`);
  }
  if (src.data.length !== src.width * src.height * 3) throw new RangeError('resize: data length does not match width·height·3');
  if (width === src.width && height === src.height) return { width, height, data: src.data.slice() };

  const vert = bicubicCoefficients(src.height, height);
  let img = src;
  let yShift = 0;
  if (width !== src.width) {
    const horiz = bicubicCoefficients(src.width, width);
    // Only the input rows the vertical pass will read are resampled horizontally, as Pillow does.
    const yFirst = vert.bounds[0];
    const yLast = vert.bounds[(height - 1) * 2] + vert.bounds[(height - 1) * 2 + 1];
    const rows = yLast - yFirst;
    img = { width, height: rows, data: resampleHorizontal(src, width, yFirst, rows, horiz) };
    yShift = yFirst;
  }
  if (height !== src.height) {
    img = { width: img.width, height, data: resampleVertical(img, height, vert, yShift) };
  }
  return img;
}

/**
 * `resizeBicubic` of `src` pasted at (x, y) on a canvasWidth×canvasHeight canvas filled with `fill` (an RGB colour),
 * without building the canvas: the pixels equal building it and resizing it, as the sums are the same integers
 * regrouped. Every tap on the fill contributes fill·weight, so each output sums the fill's weights once and reads only
 * the taps that land on the image; outputs whose taps miss the image are the fill's own. A thin image padded to a
 * huge square (1 × 65,535 → 65,535², 12.9 GB as a canvas) then costs about what the image holds.
 */
export function resizeBicubicOnCanvas(src: RgbImage, canvasWidth: number, canvasHeight: number, x: number, y: number, fill: readonly [number, number, number], width: number, height: number): RgbImage {
  const { width: w, height: h, data } = src;
  if (!(x >= 0 && y >= 0 && x + w <= canvasWidth && y + h <= canvasHeight)) throw new RangeError('resizeBicubicOnCanvas: the image does not fit the canvas at that place');
  if (data.length !== w * h * 3) throw new RangeError('resize: data length does not match width·height·3');
  const stride = width * 3;

  // Horizontal: the fill row's outputs (`fillOut`), and for each image row the output columns [lo, hi) whose taps
  // reach the image's columns (contiguous: windows only move right), kept in `mid` (image rows × those columns).
  let fillOut: Uint8Array;
  let lo: number;
  let hi: number;
  let mid: Uint8Array;
  if (width === canvasWidth) {
    fillOut = new Uint8Array(stride);
    for (let i = 0; i < stride; i += 3) fillOut.set(fill, i);
    [lo, hi, mid] = [x, x + w, data];
  } else {
    const c = bicubicCoefficients(canvasWidth, width);
    const { ksize, bounds, weights } = c;
    fillOut = new Uint8Array(stride);
    lo = 0;
    while (lo < width && bounds[lo * 2] + bounds[lo * 2 + 1] <= x) lo++;
    hi = lo;
    while (hi < width && bounds[hi * 2] < x + w) hi++;
    // Per output column: the weight of its taps on the fill, and its taps on the image [first, last).
    const fillWeight = new Int32Array(width);
    const first = new Int32Array(width);
    const last = new Int32Array(width);
    for (let xx = 0; xx < width; xx++) {
      const xmin = bounds[xx * 2];
      const count = bounds[xx * 2 + 1];
      const a = Math.min(Math.max(xmin, x), xmin + count);
      const b = Math.max(Math.min(xmin + count, x + w), a);
      let all = 0;
      let onImage = 0;
      for (let t = 0; t < count; t++) {
        all += weights[xx * ksize + t];
        if (xmin + t >= a && xmin + t < b) onImage += weights[xx * ksize + t];
      }
      fillWeight[xx] = all - onImage;
      first[xx] = a;
      last[xx] = b;
      for (let ch = 0; ch < 3; ch++) fillOut[xx * 3 + ch] = clip8((ROUNDING + fill[ch] * all) | 0);
    }
    const cols = (hi - lo) * 3;
    mid = new Uint8Array(cols * h);
    let work = 0;
    for (let r = 0; r < h; r++) {
      const rowBase = r * w * 3;
      for (let xx = lo, o = r * cols; xx < hi; xx++) {
        const fw = fillWeight[xx];
        let s0 = (ROUNDING + fill[0] * fw) | 0;
        let s1 = (ROUNDING + fill[1] * fw) | 0;
        let s2 = (ROUNDING + fill[2] * fw) | 0;
        const kBase = xx * ksize - bounds[xx * 2];
        for (let px = first[xx], p = rowBase + (px - x) * 3; px < last[xx]; px++, p += 3) {
          const wt = weights[kBase + px];
          s0 = (s0 + data[p] * wt) | 0;
          s1 = (s1 + data[p + 1] * wt) | 0;
          s2 = (s2 + data[p + 2] * wt) | 0;
        }
        mid[o++] = clip8(s0);
        mid[o++] = clip8(s1);
        mid[o++] = clip8(s2);
      }
    }
    for (let xx = lo; xx < hi; xx++) work += last[xx] - first[xx];
    resampleWork.multiplyAdds += work * h * 3;
  }
  const cols = (hi - lo) * 3;
  const out = new Uint8Array(stride * height);
  if (height === canvasHeight) {
    for (let r = 0; r < height; r++) {
      out.set(fillOut, r * stride);
      if (r >= y && r < y + h) out.set(mid.subarray((r - y) * cols, (r - y + 1) * cols), r * stride + lo * 3);
    }
    return { width, height, data: out };
  }

  // Vertical: likewise, rows of `mid` stand for image rows; every other row is `fillOut`.
  const { ksize, bounds, weights } = bicubicCoefficients(canvasHeight, height);
  let work = 0;
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[yy * 2];
    const count = bounds[yy * 2 + 1];
    const kBase = yy * ksize - ymin;
    const a = Math.min(Math.max(ymin, y), ymin + count);
    const b = Math.max(Math.min(ymin + count, y + h), a);
    let all = 0;
    let onImage = 0;
    for (let t = 0; t < count; t++) {
      all += weights[yy * ksize + t];
      if (ymin + t >= a && ymin + t < b) onImage += weights[yy * ksize + t];
    }
    const fw = all - onImage;
    const o = yy * stride;
    for (let col = 0; col < stride; col++) out[o + col] = clip8((ROUNDING + fillOut[col] * all) | 0);
    if (a === b) continue;
    for (let col = 0; col < cols; col++) {
      let acc = (ROUNDING + fillOut[lo * 3 + col] * fw) | 0;
      for (let r = a, p = (a - y) * cols + col; r < b; r++, p += cols) acc = (acc + mid[p] * weights[kBase + r]) | 0;
      out[o + lo * 3 + col] = clip8(acc);
    }
    work += (b - a) * cols;
  }
  resampleWork.multiplyAdds += work;
  return { width, height, data: out };
}

/**
 * Source index of each output column (or row) of Pillow's NEAREST resize (Geometry.c `ImagingScaleAffine`): the
 * position starts at scale/2 and is advanced by adding scale = in/out in float64 (accumulated, not multiplied, so
 * rounding matches), then truncated.
 */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const scale = inSize / outSize;
  const idx = new Int32Array(outSize);
  let pos = scale * 0.5;
  for (let i = 0; i < outSize; i++, pos += scale) idx[i] = Math.min(inSize - 1, Math.trunc(pos));
  return idx;
}

/** Pillow's NEAREST resize of interleaved pixels with `channels` bytes each (what `Image.resize` does for modes P and 1). */
export function resizeNearest(data: Uint8Array, srcWidth: number, srcHeight: number, channels: number, width: number, height: number): Uint8Array {
  const xs = nearestIndices(srcWidth, width);
  const ys = nearestIndices(srcHeight, height);
  const out = new Uint8Array(width * height * channels);
  for (let y = 0, o = 0; y < height; y++) {
    const row = ys[y] * srcWidth;
    for (let x = 0; x < width; x++) {
      const s = (row + xs[x]) * channels;
      for (let c = 0; c < channels; c++) out[o++] = data[s + c];
    }
  }
  return out;
}
