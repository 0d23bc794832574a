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

/** Horizontal pass over input rows [yFirst, yFirst + rows). */
function resampleHorizontal(src: RgbImage, outWidth: number, yFirst: number, rows: number, c: Coefficients): Uint8Array {
  const out = new Uint8Array(outWidth * rows * 3);
  const { ksize, bounds, weights } = c;
  const inStride = src.width * 3;
  const data = src.data;
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + yFirst) * inStride;
    let o = y * outWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = bounds[xx * 2];
      const count = bounds[xx * 2 + 1];
      const kBase = xx * ksize;
      let s0 = ROUNDING;
      let s1 = ROUNDING;
      let s2 = ROUNDING;
      let p = rowBase + xmin * 3;
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
