/**
 * The 384×384 uint8 views the official SigLIP path feeds the processor (mm_utils.process_anyres_image / the driver's
 * "pad" path), built with Pillow's arithmetic: BICUBIC resampling (Pillow-exact), RGBA/LA resized premultiplied as
 * Pillow does, alpha dropped without compositing, black canvas for tiles, grey 127 squares for "pad".
 */
import type { RawImage } from '../../image/decode';
import { resizeBicubic, resizeBicubicOnCanvas, resizeNearest, type RgbImage } from '../../image/pillowResize';
import { resizeAndPadGeometry, selectBestResolution } from './anyres';

/** A decoded picture as PIL holds it: colour (grey replicated to RGB, which resamples identically) and its alpha. */
export interface PilImage {
  rgb: RgbImage;
  alpha?: Uint8Array;
  /** Opened by Pillow as 'P' or '1': `resize` samples NEAREST (the colours are already expanded from the palette). */
  nearest?: boolean;
}

export function pilImageOf(raw: RawImage): PilImage {
  const { width, height, channels, data } = raw;
  const n = width * height;
  const nearest = raw.sourceMode !== undefined ? { nearest: true } : {};
  if (channels === 3) return { rgb: { width, height, data: data.length === n * 3 ? data : data.subarray(0, n * 3) }, ...nearest };
  const rgb = new Uint8Array(n * 3);
  const hasAlpha = channels === 2 || channels === 4;
  const alpha = hasAlpha ? new Uint8Array(n) : undefined;
  const grey = channels < 3;
  for (let i = 0, s = 0; i < n; i++, s += channels) {
    rgb[i * 3] = data[s];
    rgb[i * 3 + 1] = data[s + (grey ? 0 : 1)];
    rgb[i * 3 + 2] = data[s + (grey ? 0 : 2)];
    if (alpha) alpha[i] = data[s + channels - 1];
  }
  return { rgb: { width, height, data: rgb }, alpha, ...nearest };
}

/**
 * `Image.resize((w, h))` with the default filter: BICUBIC for RGB/L/RGBA/LA, NEAREST for P/1 (a palette image's
 * transparency is no band of it, so nothing is premultiplied); same size is an exact copy.
 */
export function pilResize(img: PilImage, width: number, height: number): PilImage {
  const { rgb, alpha } = img;
  if (rgb.width === width && rgb.height === height) return { rgb: { ...rgb, data: rgb.data.slice() }, alpha: alpha?.slice() };
  if (img.nearest) {
    return {
      rgb: { width, height, data: resizeNearest(rgb.data, rgb.width, rgb.height, 3, width, height) },
      alpha: alpha && resizeNearest(alpha, rgb.width, rgb.height, 1, width, height),
    };
  }
  if (!alpha) return { rgb: resizeBicubic(rgb, width, height) };
  // Pillow resizes RGBA as RGBa: premultiply (MULDIV255), resample every band, then divide back.
  const n = rgb.width * rgb.height;
  const pre = new Uint8Array(n * 3);
  const a3 = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = alpha[i];
    for (let c = 0; c < 3; c++) {
      const t = rgb.data[i * 3 + c] * a + 128;
      pre[i * 3 + c] = ((t >> 8) + t) >> 8;
      a3[i * 3 + c] = a;
    }
  }
  const colour = resizeBicubic({ width: rgb.width, height: rgb.height, data: pre }, width, height).data;
  const alphaOut = resizeBicubic({ width: rgb.width, height: rgb.height, data: a3 }, width, height).data;
  const m = width * height;
  const outAlpha = new Uint8Array(m);
  for (let i = 0; i < m; i++) {
    const a = alphaOut[i * 3];
    outAlpha[i] = a;
    if (a !== 0 && a !== 255) {
      for (let c = 0; c < 3; c++) colour[i * 3 + c] = Math.min(255, Math.floor((255 * colour[i * 3 + c]) / a));
    }
  }
  return { rgb: { width, height, data: colour }, alpha: outAlpha };
}

/** `canvas.paste(img, (x, y))` of the colour bands (an RGB canvas takes RGBA pixels without compositing). */
function paste(canvas: RgbImage, src: RgbImage, x: number, y: number): void {
  for (let r = 0; r < src.height; r++) {
    canvas.data.set(src.data.subarray(r * src.width * 3, (r + 1) * src.width * 3), ((y + r) * canvas.width + x) * 3);
  }
}

function crop(src: RgbImage, x: number, y: number, size: number): RgbImage {
  const out = new Uint8Array(size * size * 3);
  for (let r = 0; r < size; r++) out.set(src.data.subarray(((y + r) * src.width + x) * 3, ((y + r) * src.width + x + size) * 3), r * size * 3);
  return { width: size, height: size, data: out };
}

export interface AnyresViews {
  /** Base view first (the whole image squashed), then the tiles row-major. */
  views: RgbImage[];
  /** Grid of tiles (rows, cols). */
  grid: [number, number];
  best: [number, number];
  resized: { width: number; height: number; x: number; y: number };
}

/** `process_anyres_image`'s views, before normalisation. */
export function anyresViews(img: PilImage, pinpoints: readonly (readonly [number, number])[], size: number): AnyresViews {
  const { width, height } = img.rgb;
  const best = selectBestResolution(width, height, pinpoints);
  const [tw, th] = best;
  const geo = resizeAndPadGeometry(width, height, tw, th);
  const canvas: RgbImage = { width: tw, height: th, data: new Uint8Array(tw * th * 3) }; // black, not the processor mean
  paste(canvas, pilResize(img, geo.width, geo.height).rgb, geo.x, geo.y);
  const views = [pilResize(img, size, size).rgb];
  for (let y = 0; y < th; y += size) for (let x = 0; x < tw; x += size) views.push(crop(canvas, x, y, size));
  return { views, grid: [th / size, tw / size], best, resized: geo };
}

/** Grey level of the "pad" square: int(0.5·255), the processor mean. */
export const PAD_GREY = 127;

/**
 * The driver's "pad" path: `expand2square` on grey 127, alpha dropped, then one BICUBIC resize to size×size. That
 * resize is the processor's, after its `convert("RGB")`, so palette images are BICUBIC here too. (For a non-square
 * palette image the official `expand2square` pastes its indices onto a 'P' canvas whose palette holds only the grey,
 * scrambling its colours; that is not imitated.) The square is never built: a long banner's (28,000 × 500) would be
 * 2.4 GB, a 1 × 65,535 strip's 12.9 GB; the resize computes the same pixels from the image and the grey alone.
 */
export function padView(img: PilImage, size: number): RgbImage {
  const { width, height } = img.rgb;
  const s = Math.max(width, height);
  const x = width > height ? 0 : Math.floor((s - width) / 2);
  const y = width > height ? Math.floor((s - height) / 2) : 0;
  return resizeBicubicOnCanvas(img.rgb, s, s, x, y, [PAD_GREY, PAD_GREY, PAD_GREY], size, size);
}
