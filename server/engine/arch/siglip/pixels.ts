import type { RgbImage } from '../../image/pillowResize';

/**
 * SigLipImageProcessor's rescale + normalise as a 256-entry table: `f32(f32(f64(u)·(1/255)) − 0.5) / 0.5`, each
 * step rounded to float32 as NumPy does (mean and std are 0.5).
 */
export const SIGLIP_PIXEL_LUT: Float32Array = (() => {
  const lut = new Float32Array(256);
  for (let u = 0; u < 256; u++) lut[u] = Math.fround(Math.fround(Math.fround(u * (1 / 255)) - 0.5) / 0.5);
  return lut;
})();

/** Views → float32 [V, 3, S, S], channel-first. */
export function pixelValues(views: readonly RgbImage[]): Float32Array {
  const s = views[0]?.width ?? 0;
  const plane = s * s;
  const out = new Float32Array(views.length * 3 * plane);
  views.forEach((v, i) => {
    if (v.width !== s || v.height !== s) throw new Error(`view ${i} is ${v.width}×${v.height}, expected ${s}×${s}`);
    const base = i * 3 * plane;
    for (let p = 0, q = 0; p < plane; p++, q += 3) {
      out[base + p] = SIGLIP_PIXEL_LUT[v.data[q]];
      out[base + plane + p] = SIGLIP_PIXEL_LUT[v.data[q + 1]];
      out[base + 2 * plane + p] = SIGLIP_PIXEL_LUT[v.data[q + 2]];
    }
  });
  return out;
}
