/**
 * LLaVA-OneVision "anyres_max" geometry, with the official code's exact arithmetic (mm_utils.py, llava_arch.py):
 * which grid of 384-px tiles an image gets, how it is resized into it, how the feature map is unpadded and how far
 * it is scaled down. Every float operation is kept in the official order: JS doubles then give the same results.
 */

/** `select_best_resolution`: the (w, h) pinpoint keeping the most effective pixels, then the least waste; first wins ties. */
export function selectBestResolution(width: number, height: number, pinpoints: readonly (readonly [number, number])[]): [number, number] {
  let best: [number, number] | undefined;
  let bestEff = 0;
  let bestWaste = Infinity;
  for (const [w, h] of pinpoints) {
    const scale = Math.min(w / width, h / height);
    const eff = Math.min(Math.trunc(width * scale) * Math.trunc(height * scale), width * height);
    const waste = w * h - eff;
    if (eff > bestEff || (eff === bestEff && waste < bestWaste)) {
      best = [w, h];
      bestEff = eff;
      bestWaste = waste;
    }
  }
  if (!best) throw new Error('select_best_resolution: no grid pinpoints');
  return best;
}

/** `resize_and_pad_image` geometry: the aspect-preserving size (ceil) and where it is pasted on the target canvas. */
export function resizeAndPadGeometry(width: number, height: number, tw: number, th: number): { width: number; height: number; x: number; y: number } {
  const sw = tw / width;
  const sh = th / height;
  let nw: number;
  let nh: number;
  if (sw < sh) {
    nw = tw;
    nh = Math.min(Math.ceil(height * sw), th);
  } else {
    // Ties (sw == sh) take this branch, as in the official code.
    nh = th;
    nw = Math.min(Math.ceil(width * sh), tw);
  }
  return { width: nw, height: nh, x: Math.floor((tw - nw) / 2), y: Math.floor((th - nh) / 2) };
}

/** `N` of `anyres_max_N`. */
export function anyresMax(aspectRatio: string): number {
  const m = /^anyres_max_(\d+)$/.exec(aspectRatio);
  if (!m) throw new Error(`image aspect ratio ${JSON.stringify(aspectRatio)} is not anyres_max_N`);
  return Number(m[1]);
}

/** The kept rows/cols of `unpad_image` on a [cH, cW] map of an image W×H: `c − 2·((c − new)//2)` of them, from `pad`. */
export interface Unpad {
  axis: 'rows' | 'cols';
  /** `new_h` or `new_w` as the official code computes it (division first, then int()). */
  newSize: number;
  pad: number;
  /** Map size after unpadding. */
  height: number;
  width: number;
}

export function unpadGeometry(width: number, height: number, cH: number, cW: number): Unpad {
  if (width / height > cW / cH) {
    const newSize = Math.trunc(height * (cW / width));
    const pad = Math.floor((cH - newSize) / 2);
    return { axis: 'rows', newSize, pad, height: cH - 2 * pad, width: cW };
  }
  const newSize = Math.trunc(width * (cH / height));
  const pad = Math.floor((cW - newSize) / 2);
  return { axis: 'cols', newSize, pad, height: cH, width: cW - 2 * pad };
}

/**
 * Python's `float // float` for positive operands: CPython rounds (a − fmod(a, b)) / b and corrects by one when the
 * quotient lands just below an integer, so `30 // 1.1111111111111112 == 26.0` where floor(30 / …) is 27.
 */
export function pyFloorDiv(a: number, b: number): number {
  const mod = a % b;
  const div = (a - mod) / b;
  let f = Math.floor(div);
  if (div - f > 0.5) f += 1;
  return f;
}

/** The anyres_max reduction: `times = sqrt(h·w / (N·27²))`; above 1.1 the map is resized to (h // times, w // times). */
export function downscaleSize(h: number, w: number, maxPatches: number, side: number): { times: number; height: number; width: number } {
  const times = Math.sqrt((h * w) / (maxPatches * side * side));
  if (times > 1.1) return { times, height: pyFloorDiv(h, times), width: pyFloorDiv(w, times) };
  return { times, height: h, width: w };
}
