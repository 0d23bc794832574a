import type { RgbImage } from '../../image/pillowResize';

/** The vision tower's patch geometry and the processor's normalisation constants. */
export interface PatchConfig {
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

export interface Patches {
  /** [gh·gw, 3·T·P·P] row-major float32. */
  pixelValues: Float32Array;
  gridThw: [number, number, number];
}

/**
 * Rescale, normalise and patchify one resized RGB image exactly as Qwen2VLImageProcessor (slow path) does.
 *
 * Rescale is `float32(float64(u8) * (1/255))` (NumPy promotes to float64, then casts); normalisation happens in
 * float32 with mean/std cast to float32 first. Emulating float32 arithmetic through doubles + Math.fround is exact
 * for a single subtraction or division. The single frame is repeated to `temporalPatchSize` frames, and rows come
 * in 2×2-merge-unit order: (block row, block col, row in unit, col in unit); columns are (channel, t, py, px).
 */
export function patchify(img: RgbImage, cfg: PatchConfig): Patches {
  const { patchSize: P, temporalPatchSize: T, mergeSize: M } = cfg;
  const { width, height, data } = img;
  const unit = P * M;
  if (width % unit !== 0 || height % unit !== 0) {
    throw new RangeError(`patchify: ${width}×${height} is not a multiple of ${unit} on both sides`);
  }
  const gh = height / P;
  const gw = width / P;

  // One lookup table per channel: 256 possible normalised values.
  const lut = new Float32Array(3 * 256);
  const scale = 1 / 255;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.mean[c]);
    const std = Math.fround(cfg.std[c]);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(v * scale);
      lut[c * 256 + v] = Math.fround(x - mean) / std;
    }
  }

  const rowLen = 3 * T * P * P;
  const out = new Float32Array(gh * gw * rowLen);
  let row = 0;
  for (let bh = 0; bh < gh / M; bh++) {
    for (let bw = 0; bw < gw / M; bw++) {
      for (let mh = 0; mh < M; mh++) {
        for (let mw = 0; mw < M; mw++, row++) {
          const y0 = (bh * M + mh) * P;
          const x0 = (bw * M + mw) * P;
          const rowBase = row * rowLen;
          for (let c = 0; c < 3; c++) {
            const l = c * 256;
            // Frame 0 first, then copy it into the other temporal slots (identical frames).
            const frame0 = rowBase + c * T * P * P;
            for (let py = 0; py < P; py++) {
              let src = ((y0 + py) * width + x0) * 3 + c;
              const dst = frame0 + py * P;
              for (let px = 0; px < P; px++, src += 3) out[dst + px] = lut[l + data[src]];
            }
            for (let t = 1; t < T; t++) out.copyWithin(frame0 + t * P * P, frame0, frame0 + P * P);
          }
        }
      }
    }
  }
  return { pixelValues: out, gridThw: [1, gh, gw] };
}
