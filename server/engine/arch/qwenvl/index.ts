/** DiffusionVL-QwenVL: Qwen2-VL preprocessing, the window layout the vision graph needs, plain splicing. */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { InputError } from '../../api';
import type { QwenVLManifest, VisionDims } from '../../manifest';
import type { OrtModel } from '../../backends/onnx/ortModel';
import type { ArchAdapter, ImageRequest } from '../types';
import { preprocessImage, preprocessOptionsFor } from './preprocess';
import { permuteUnits, visionLayout, visionRotary, windowBatches, windowMask } from './visionLayout';

/**
 * The vision graph's feeds for one image's processor rows, in window order. Graphs converted before window attention
 * was batched per window take [N, N] additive masks (`window_mask`, `full_mask`) instead of the window batch
 * layout; the feeds follow the inputs the graph declares, so both load.
 */
export function visionFeeds(inputNames: readonly string[], v: VisionDims, pixels: Float32Array, grid: [number, number, number]): Record<string, ort.Tensor> {
  const layout = visionLayout(grid, v);
  const unit = v.spatialMergeSize * v.spatialMergeSize;
  const n = layout.numPatches;
  const rowLen = pixels.length / n;
  const rot = visionRotary(layout, v);
  const feeds: Record<string, ort.Tensor> = {
    pixel_patches: new ort.Tensor('float32', permuteUnits(pixels, rowLen, unit, layout.windowIndex), [n, rowLen]),
    cos: new ort.Tensor('float32', permuteUnits(rot.cos, v.headDim, unit, layout.windowIndex), [n, v.headDim]),
    sin: new ort.Tensor('float32', permuteUnits(rot.sin, v.headDim, unit, layout.windowIndex), [n, v.headDim]),
    restore_index: new ort.Tensor('int64', layout.restoreIndex, [layout.restoreIndex.length]),
  };
  if (inputNames.includes('window_mask')) {
    feeds.window_mask = new ort.Tensor('float32', windowMask(layout), [n, n]);
    feeds.full_mask = new ort.Tensor('float32', new Float32Array(n * n), [n, n]);
  } else {
    const b = windowBatches(layout, v);
    feeds.window_gather = new ort.Tensor('int64', b.gather, [b.gather.length]);
    feeds.window_scatter = new ort.Tensor('int64', b.scatter, [n]);
    feeds.window_bias = new ort.Tensor('float32', b.bias, [b.windows, 1, 1, b.bias.length / b.windows]);
  }
  return feeds;
}

/** Image features [N/4, out] in raster order for one image's processor rows. */
export async function encodeQwenVL(model: OrtModel, v: VisionDims, pixels: Float32Array, grid: [number, number, number]): Promise<Float32Array> {
  return model.runVision(visionFeeds(model.visionInputNames, v, pixels, grid), 'image_features');
}

export function qwenVLAdapter(m: QwenVLManifest, model: OrtModel): ArchAdapter {
  // Transparency is composited over white unless the official drop is asked for.
  const alphaOf = (req: ImageRequest) => req.alpha ?? 'white';
  return {
    imageOptionsKey: (req) => alphaOf(req),
    async prepareImage(image, req) {
      if (req.aspectRatio !== undefined) throw new InputError('an image aspect ratio applies to the SigLIP variant only');
      const pre = await preprocessImage(image, preprocessOptionsFor(m.image, m.vision, alphaOf(req)));
      const key = createHash('sha256')
        .update(Buffer.from(pre.pixelValues.buffer, pre.pixelValues.byteOffset, pre.pixelValues.byteLength))
        .update(pre.gridThw.join('x'))
        .digest('hex');
      return { key, encode: () => encodeQwenVL(model, m.vision, pre.pixelValues, pre.gridThw) };
    },
    promptIds: (ids) => ids,
    loop: { fullDiffusionSchedule: 'blockSize', samplingConfidence: 'filtered' },
    driverAspectRatio: () => undefined,
    promptRowLimit: () => undefined,
  };
}
