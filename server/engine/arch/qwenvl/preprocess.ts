/**
 * Image preprocessing for the QwenVL variant: decode (sharp, plus a small BMP reader) → Qwen2-VL smart_resize →
 * Pillow-exact bicubic resize → rescale/normalise → 2×2-merge-unit patches. Bit-identical to the slow
 * Qwen2VLImageProcessor for RGB inputs.
 */
import { InputError, type ImageInput } from '../../api';
import type { ImageConfig, VisionDims } from '../../manifest';
import { decodeImage, type AlphaMode } from '../../image/decode';
import { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../../image/limits';
import { resizeBicubic } from '../../image/pillowResize';
import { patchify, type PatchConfig } from './patches';
import { smartResize } from './smartResize';

export { smartResize, roundHalfEven } from './smartResize';
export { patchify, type PatchConfig, type Patches } from './patches';

export interface PreprocessOptions extends PatchConfig {
  minPixels: number;
  maxPixels: number;
  /** Default 'white'. 'drop' reproduces the official processor (PIL `convert("RGB")`). */
  alpha?: AlphaMode;
  /** Default MAX_IMAGE_PIXELS. */
  maxInputPixels?: number;
  /** Default MAX_IMAGE_BYTES. */
  maxInputBytes?: number;
}

export interface PreprocessedImage {
  /** [gh·gw, 3·T·P·P] float32, rows in 2×2-merge-unit order. */
  pixelValues: Float32Array;
  /** [1, gh, gw] in patches. */
  gridThw: [number, number, number];
  resized: { width: number; height: number };
  /** Decoded size after EXIF orientation. */
  original: { width: number; height: number };
}

/** The Qwen2-VL processor constants (OPENAI_CLIP mean/std) with DiffusionVL's eval pixel bounds. */
export const QWEN_IMAGE_DEFAULTS: Readonly<Required<Omit<PreprocessOptions, 'maxInputPixels' | 'maxInputBytes'>>> = {
  minPixels: 147456,
  maxPixels: 262144,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
  alpha: 'white',
};

/** Options from a converted model's manifest. */
export function preprocessOptionsFor(image: ImageConfig, vision: VisionDims, alpha: AlphaMode = 'white'): PreprocessOptions {
  return {
    minPixels: image.minPixels,
    maxPixels: image.maxPixels,
    mean: image.mean,
    std: image.std,
    patchSize: vision.patchSize,
    temporalPatchSize: vision.temporalPatchSize,
    mergeSize: vision.spatialMergeSize,
    alpha,
  };
}

function checkOptions(o: PreprocessOptions): void {
  const positiveInt = (v: number) => Number.isSafeInteger(v) && v > 0;
  for (const key of ['minPixels', 'maxPixels', 'patchSize', 'temporalPatchSize', 'mergeSize'] as const) {
    if (!positiveInt(o[key])) throw new InputError(`${key} must be a positive integer, got ${o[key]}`);
  }
  if (o.minPixels > o.maxPixels) throw new InputError(`minPixels (${o.minPixels}) is larger than maxPixels (${o.maxPixels})`);
  if (o.alpha !== undefined && o.alpha !== 'white' && o.alpha !== 'drop') throw new InputError(`alpha must be "white" or "drop", got "${String(o.alpha)}"`);
  for (const key of ['maxInputPixels', 'maxInputBytes'] as const) {
    const v = o[key];
    if (v !== undefined && !positiveInt(v)) throw new InputError(`${key} must be a positive integer, got ${v}`);
  }
  if (o.mean.length !== 3 || o.std.length !== 3 || o.std.some((s) => !(s > 0))) throw new InputError('mean/std must be three numbers, std > 0');
}

export async function preprocessImage(input: ImageInput | Uint8Array, opts: PreprocessOptions): Promise<PreprocessedImage> {
  checkOptions(opts);
  const rgb = await decodeImage(input, {
    alpha: opts.alpha ?? 'white',
    maxInputPixels: opts.maxInputPixels ?? MAX_IMAGE_PIXELS,
    maxInputBytes: opts.maxInputBytes ?? MAX_IMAGE_BYTES,
  });
  const [h, w] = smartResize(rgb.height, rgb.width, opts.patchSize * opts.mergeSize, opts.minPixels, opts.maxPixels);
  const resized = resizeBicubic(rgb, w, h);
  const { pixelValues, gridThw } = patchify(resized, opts);
  return { pixelValues, gridThw, resized: { width: w, height: h }, original: { width: rgb.width, height: rgb.height } };
}

/** Several images in one call, as the processor returns them: rows concatenated, one grid row per image. */
export async function preprocessImages(
  inputs: readonly (ImageInput | Uint8Array)[],
  opts: PreprocessOptions,
): Promise<{ pixelValues: Float32Array; gridThw: [number, number, number][]; images: PreprocessedImage[] }> {
  const images: PreprocessedImage[] = [];
  for (const input of inputs) images.push(await preprocessImage(input, opts));
  const pixelValues = new Float32Array(images.reduce((n, im) => n + im.pixelValues.length, 0));
  let offset = 0;
  for (const im of images) {
    pixelValues.set(im.pixelValues, offset);
    offset += im.pixelValues.length;
  }
  return { pixelValues, gridThw: images.map((im) => im.gridThw), images };
}
