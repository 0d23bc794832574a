import { InputError } from '../../api';

/** Python 3 `round()` on a float: ties go to the even neighbour (2.5 → 2, 3.5 → 4). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f; // exact for the magnitudes we deal with
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Qwen2-VL `smart_resize`: the target size, a multiple of `factor` on both sides, with roughly the original aspect
 * ratio and a pixel count inside [minPixels, maxPixels]. Float64 throughout, as in Python; returns [height, width].
 */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  if (!(height > 0 && width > 0)) throw new InputError(`image has no pixels (${width}×${height})`);
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new InputError(`image aspect ratio must be at most 200, got ${width}×${height}`);
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}
