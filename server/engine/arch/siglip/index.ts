/**
 * DiffusionVL-Qwen (SigLIP): anyres_max tiling or the "pad" square, the SigLIP + projector graph over all views,
 * then the official grid assembly (unpad, bilinear down-scale, image-newline rows).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { InputError, type ImageInput } from '../../api';
import { decodeImageRaw, type AlphaMode } from '../../image/decode';
import { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../../image/limits';
import type { RgbImage } from '../../image/pillowResize';
import type { SiglipManifest } from '../../manifest';
import type { OrtModel } from '../../backends/onnx/ortModel';
import type { ArchAdapter, ImageRequest } from '../types';
import { anyresMax } from './anyres';
import { assembleAnyres, assembleSingle } from './assemble';
import { pixelValues } from './pixels';
import { anyresViews, padView, pilImageOf, type PilImage } from './views';

/** Views per vision-graph run: bounds the attention scratch of big towers (37 views at most per image). */
const VIEW_BATCH = 4;

/** `pad` or `anyres_max_N` (N ≥ 1). */
export function checkAspectRatio(value: string): string {
  if (value === 'pad' || /^anyres_max_[1-9]\d*$/.test(value)) return value;
  throw new InputError(`image aspect ratio must be "pad" or "anyres_max_N", got ${JSON.stringify(value)}`);
}

export interface SiglipPreprocessed {
  mode: 'pad' | 'anyres';
  /** uint8 views (base first, then tiles row-major; one view in pad mode). */
  views: RgbImage[];
  /** float32 [V, 3, S, S]. */
  pixelValues: Float32Array;
  /** Tile grid (rows, cols); [1, 1] in pad mode. */
  grid: [number, number];
  original: { width: number; height: number };
  maxPatches: number;
}

/**
 * Transparency: 'drop' (default) is the official behaviour (RGBA resized premultiplied, alpha then dropped);
 * 'white' composites over white first, a deliberate difference users may prefer for transparent PNGs.
 */
export async function preprocessSiglip(image: ImageInput | Uint8Array, m: Pick<SiglipManifest, 'image' | 'vision'>, aspectRatio: string, alpha: AlphaMode = 'drop'): Promise<SiglipPreprocessed> {
  const raw = await decodeImageRaw(image, { maxInputPixels: MAX_IMAGE_PIXELS, maxInputBytes: MAX_IMAGE_BYTES });
  let img: PilImage = pilImageOf(raw);
  if (alpha === 'white' && img.alpha) {
    const { rgb, alpha: a } = img;
    const data = new Uint8Array(rgb.data.length);
    for (let i = 0; i < a.length; i++) for (let c = 0; c < 3; c++) data[i * 3 + c] = Math.floor((rgb.data[i * 3 + c] * a[i] + 255 * (255 - a[i]) + 127) / 255);
    img = { rgb: { ...rgb, data } };
  }
  const size = m.vision.imageSize;
  const original = { width: raw.width, height: raw.height };
  if (aspectRatio === 'pad') {
    const views = [padView(img, size)];
    return { mode: 'pad', views, pixelValues: pixelValues(views), grid: [1, 1], original, maxPatches: 0 };
  }
  const a = anyresViews(img, m.image.gridPinpoints, size);
  return { mode: 'anyres', views: a.views, pixelValues: pixelValues(a.views), grid: a.grid, original, maxPatches: anyresMax(aspectRatio) };
}

/** Runs the SigLIP + projector graph over all views, a few at a time: projected features [V, side², H]. */
export async function encodeViews(model: OrtModel, m: SiglipManifest, pixels: Float32Array, check: () => void, fetch = 'image_features'): Promise<Float32Array> {
  const S = m.vision.imageSize;
  const plane = 3 * S * S;
  const views = pixels.length / plane;
  const side = Math.floor(S / m.vision.patchSize);
  const width = fetch === 'image_features' ? m.vision.outHiddenSize : m.vision.hiddenSize;
  const out = new Float32Array(views * side * side * width);
  for (let v0 = 0; v0 < views; v0 += VIEW_BATCH) {
    check();
    const n = Math.min(VIEW_BATCH, views - v0);
    const feats = await model.runVision({ pixel_values: new ort.Tensor('float32', pixels.subarray(v0 * plane, (v0 + n) * plane), [n, 3, S, S]) }, fetch);
    out.set(feats, v0 * side * side * width);
  }
  return out;
}

/** The learned image-newline row (float32 file written by the converter). */
export function readNewline(modelDir: string, m: SiglipManifest): Float32Array {
  const bytes = readFileSync(join(modelDir, m.image.newlineFile));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

export function siglipAdapter(m: SiglipManifest, model: OrtModel, modelDir: string): ArchAdapter {
  const newline = readNewline(modelDir, m);
  if (newline.length !== m.vision.outHiddenSize) throw new Error(`${m.image.newlineFile}: ${newline.length} values, expected ${m.vision.outHiddenSize}`);
  const aspectOf = (req: ImageRequest) => checkAspectRatio(req.aspectRatio ?? m.image.aspectRatio);
  const alphaOf = (req: ImageRequest) => req.alpha ?? 'drop';
  const side = Math.floor(m.vision.imageSize / m.vision.patchSize);
  return {
    imageOptionsKey: (req) => `${alphaOf(req)}|${aspectOf(req)}`,
    async prepareImage(image, req) {
      const pre = await preprocessSiglip(image, m, aspectOf(req), alphaOf(req));
      const key = createHash('sha256')
        .update(Buffer.from(pre.pixelValues.buffer, pre.pixelValues.byteOffset, pre.pixelValues.byteLength))
        .update(`${pre.mode}|${pre.grid.join('x')}|${pre.original.width}x${pre.original.height}|${pre.maxPatches}`)
        .digest('hex');
      return {
        key,
        encode: async (check) => {
          const feats = await encodeViews(model, m, pre.pixelValues, check);
          const H = m.vision.outHiddenSize;
          if (pre.mode === 'pad') return assembleSingle(feats, H, newline);
          return assembleAnyres({ features: feats, hidden: H, side, grid: pre.grid, imageSize: [pre.original.width, pre.original.height], maxPatches: pre.maxPatches, newline }).rows;
        },
      };
    },
    // The official image path builds its attention mask as ids != pad and deletes every masked position, so a
    // literal <|endoftext|> in the prompt vanishes when images are present (not on the text-only path).
    promptIds: (ids, imageCount) => (imageCount > 0 ? ids.filter((id) => id !== m.tokens.pad) : ids),
    loop: { fullDiffusionSchedule: 'genLength', samplingConfidence: 'raw' },
    // The driver sets image_aspect_ratio = getattr(gen_kwargs, "image_aspect_ratio", "pad") for several images;
    // getattr on a dict is always "pad": one grey-padded square view (729 rows + newline) per image.
    driverAspectRatio: (imageCount) => (imageCount > 1 ? 'pad' : undefined),
    // prepare_inputs_labels_for_multimodal truncates to tokenizer_model_max_length; the text-only path does not.
    promptRowLimit: (imageCount) => (imageCount > 0 ? m.maxPromptRows : undefined),
  };
}
