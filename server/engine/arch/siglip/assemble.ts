/**
 * From projected per-view features to the rows spliced into the prompt (llava_arch.py, `spatial_unpad` +
 * `anyres_max`): base view's 729 rows, then the tile grid as one feature map, unpadded with the official integer
 * arithmetic, bilinearly scaled down when larger than N views' worth, and one image-newline row after every map row.
 */
import { downscaleSize, unpadGeometry, type Unpad } from './anyres';

export interface AssembleInput {
  /** [views, side², hidden] projected features; view 0 is the base view. */
  features: Float32Array;
  hidden: number;
  /** Patches per view side (27). */
  side: number;
  /** Tile grid (rows, cols). */
  grid: [number, number];
  /** The original image size (W, H), as `image_sizes` records it. */
  imageSize: [number, number];
  /** N of anyres_max_N. */
  maxPatches: number;
  newline: Float32Array;
}

export interface Assembled {
  rows: Float32Array;
  unpad: Unpad;
  /** Final map size (after the optional down-scale). */
  map: [number, number];
  times: number;
}

/** The tile map [cH, cW, hidden] (row-major cells) with the unpadding applied. */
export function unpaddedMap(a: AssembleInput): { map: Float32Array; unpad: Unpad } {
  const { features, hidden: C, side, grid } = a;
  const [nph, npw] = grid;
  const cH = nph * side;
  const cW = npw * side;
  const u = unpadGeometry(a.imageSize[0], a.imageSize[1], cH, cW);
  const r0 = u.axis === 'rows' ? u.pad : 0;
  const c0 = u.axis === 'cols' ? u.pad : 0;
  const map = new Float32Array(u.height * u.width * C);
  for (let y = 0; y < u.height; y++) {
    const gy = y + r0;
    const tileRow = Math.floor(gy / side);
    const py = gy % side;
    for (let x = 0; x < u.width; x++) {
      const gx = x + c0;
      const view = 1 + tileRow * npw + Math.floor(gx / side);
      const src = (view * side * side + py * side + (gx % side)) * C;
      map.set(features.subarray(src, src + C), (y * u.width + x) * C);
    }
  }
  return { map, unpad: u };
}

/**
 * `F.interpolate(mode="bilinear", align_corners=False)` as PyTorch computes it in float32: scale = in/out (float32),
 * source = max(0, scale·(o + 0.5) − 0.5), neighbours clamped at the edge, no antialiasing.
 */
export function bilinearResize(src: Float32Array, h: number, w: number, C: number, oh: number, ow: number): Float32Array {
  const f = Math.fround;
  const axis = (inSize: number, outSize: number) => {
    const scale = f(inSize / outSize);
    const i0 = new Int32Array(outSize);
    const i1 = new Int32Array(outSize);
    const l0 = new Float32Array(outSize);
    const l1 = new Float32Array(outSize);
    for (let o = 0; o < outSize; o++) {
      const s = Math.max(0, f(f(scale * f(o + 0.5)) - 0.5));
      const i = Math.trunc(s);
      i0[o] = i;
      i1[o] = i + (i < inSize - 1 ? 1 : 0);
      l1[o] = f(s - i);
      l0[o] = f(1 - l1[o]);
    }
    return { i0, i1, l0, l1 };
  };
  const ry = axis(h, oh);
  const rx = axis(w, ow);
  const out = new Float32Array(oh * ow * C);
  for (let y = 0; y < oh; y++) {
    const a0 = ry.i0[y] * w;
    const a1 = ry.i1[y] * w;
    const h0 = ry.l0[y];
    const h1 = ry.l1[y];
    for (let x = 0; x < ow; x++) {
      const b0 = rx.i0[x];
      const b1 = rx.i1[x];
      const w0 = rx.l0[x];
      const w1 = rx.l1[x];
      const p00 = (a0 + b0) * C;
      const p01 = (a0 + b1) * C;
      const p10 = (a1 + b0) * C;
      const p11 = (a1 + b1) * C;
      const o = (y * ow + x) * C;
      for (let c = 0; c < C; c++) {
        const top = f(f(w0 * src[p00 + c]) + f(w1 * src[p01 + c]));
        const bottom = f(f(w0 * src[p10 + c]) + f(w1 * src[p11 + c]));
        out[o + c] = f(f(h0 * top) + f(h1 * bottom));
      }
    }
  }
  return out;
}

/** The rows one anyres image contributes: base (side²), then per map row its cells and one newline. */
export function assembleAnyres(a: AssembleInput): Assembled {
  const C = a.hidden;
  const { map, unpad } = unpaddedMap(a);
  const d = downscaleSize(unpad.height, unpad.width, a.maxPatches, a.side);
  const final = d.height === unpad.height && d.width === unpad.width ? map : bilinearResize(map, unpad.height, unpad.width, C, d.height, d.width);
  const base = a.side * a.side;
  const rows = new Float32Array((base + d.height * (d.width + 1)) * C);
  rows.set(a.features.subarray(0, base * C), 0);
  let at = base * C;
  for (let y = 0; y < d.height; y++) {
    rows.set(final.subarray(y * d.width * C, (y + 1) * d.width * C), at);
    at += d.width * C;
    rows.set(a.newline, at);
    at += C;
  }
  return { rows, unpad, map: [d.height, d.width], times: d.times };
}

/** A single-view image ("pad" mode): its side² rows and one newline. */
export function assembleSingle(features: Float32Array, hidden: number, newline: Float32Array): Float32Array {
  const rows = new Float32Array(features.length + hidden);
  rows.set(features, 0);
  rows.set(newline, features.length);
  return rows;
}
