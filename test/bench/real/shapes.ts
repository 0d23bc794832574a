import { writeTinyCheckpoint, type TinyCheckpointOptions, type TinyTextDims, type TinyVisionDims } from '../../helpers/checkpoint/tinyCheckpoint';
import { SIGLIP_7B_DIMS, writeSiglipCheckpoint } from '../../helpers/checkpoint/tinySiglipCheckpoint';

/**
 * The released model shapes `bench:real` can generate. A new shape is one more entry of `REAL_SHAPES`: its dimensions
 * and how to write its checkpoint (another architecture brings its own generator, e.g. a SigLIP tower). The benchmark
 * reads everything else from the converted model's manifest; the vision FLOP count (flops.ts) and the image-token
 * count (phases.ts) are per architecture.
 */
export interface RealShape {
  /** The Hugging Face release it stands for. */
  release: string;
  /**
   * Images (width, height) whose vision time is read besides the asked screenshot: a QwenVL tower's work grows with
   * the pixel count, a SigLIP anyres tower's with the number of 384² views the image tiles into.
   */
  visionImages: [number, number][];
  textLayers: number;
  visionBlocks: number;
  /** Text widths (the micro-benchmarks time this shape's MLP linears). */
  hiddenSize: number;
  intermediateSize: number;
  /** The release's checkpoint cut to the first `layers` text layers and vision blocks (all when undefined). */
  checkpoint(layers?: number): RealCheckpoint;
}

export interface RealCheckpoint {
  textLayers: number;
  visionBlocks: number;
  /** Identifies the generated files (cache key). */
  options: object;
  write(dir: string): Promise<unknown>;
}

interface QwenVLShape {
  release: string;
  text: TinyTextDims;
  vision: TinyVisionDims;
  tied: boolean;
  /** Safetensors shards of the release (its size on disk is what the converter streams). */
  shards: number;
}

const QWEN25VL_VISION: TinyVisionDims = {
  depth: 32,
  hiddenSize: 1280,
  numHeads: 16,
  intermediateSize: 3420,
  patchSize: 14,
  temporalPatchSize: 2,
  spatialMergeSize: 2,
  windowSize: 112,
  fullAttentionBlocks: [7, 15, 23, 31],
  inChannels: 3,
};

const QWEN25_TEXT = { vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1000000.0 };

const qwenVL = (shape: QwenVLShape): RealShape => ({
  release: shape.release,
  visionImages: [[1920, 1080]],
  textLayers: shape.text.numLayers,
  visionBlocks: shape.vision.depth,
  hiddenSize: shape.text.hiddenSize,
  intermediateSize: shape.text.intermediateSize,
  checkpoint(layers) {
    const options = checkpointOptions(shape, layers);
    return { textLayers: options.text!.numLayers!, visionBlocks: options.vision!.depth!, options, write: (dir) => writeTinyCheckpoint(dir, options) };
  },
});

export const REAL_SHAPES: Record<string, RealShape> = {
  '3b': qwenVL({
    release: 'hustvl/DiffusionVL-Qwen2.5VL-3B',
    text: { ...QWEN25_TEXT, hiddenSize: 2048, intermediateSize: 11008, numLayers: 36, numHeads: 16, numKvHeads: 2 },
    vision: QWEN25VL_VISION,
    tied: true,
    shards: 2,
  }),
  '7b': qwenVL({
    release: 'hustvl/DiffusionVL-Qwen2.5VL-7B',
    text: { ...QWEN25_TEXT, hiddenSize: 3584, intermediateSize: 18944, numLayers: 28, numHeads: 28, numKvHeads: 4 },
    vision: QWEN25VL_VISION,
    tied: false,
    shards: 4,
  }),
  // DiffusionVL-Qwen2.5-7B: the checkpoint bench:convert generates (same dimensions and writer). Under anyres_max_9 a
  // 384² image is 2 views (base + 1 tile), 768² is 5 (base + 2×2), 1152² is 10 (base + 3×3).
  '7b-siglip': {
    release: 'hustvl/DiffusionVL-Qwen2.5-7B',
    visionImages: [[384, 384], [768, 768], [1152, 1152]],
    textLayers: SIGLIP_7B_DIMS.layers,
    // The hub config lists one layer more than the official loader runs.
    visionBlocks: SIGLIP_7B_DIMS.vHubLayers - 1,
    hiddenSize: SIGLIP_7B_DIMS.hidden,
    intermediateSize: SIGLIP_7B_DIMS.intermediate,
    checkpoint(layers) {
      const textLayers = Math.min(layers ?? SIGLIP_7B_DIMS.layers, SIGLIP_7B_DIMS.layers);
      const visionBlocks = Math.min(layers ?? SIGLIP_7B_DIMS.vHubLayers - 1, SIGLIP_7B_DIMS.vHubLayers - 1);
      // A cut tower needs its own hub config (the release names google/siglip2-so400m-patch14-384, 27 hub layers).
      const towerFolder = visionBlocks < SIGLIP_7B_DIMS.vHubLayers - 1;
      const options = { dims: { ...SIGLIP_7B_DIMS, layers: textLayers, vHubLayers: visionBlocks + 1 }, dtype: 'BF16' as const, fill: 'cheap' as const, shards: 4, towerFolder };
      return { textLayers, visionBlocks, options, write: (dir) => writeSiglipCheckpoint(dir, options) };
    },
  },
};

/**
 * Checkpoint options for a shape, optionally cut to the first `layers` text layers and vision blocks (the vision
 * tower keeps the full-attention blocks that fall inside the cut, at least its last block).
 */
function checkpointOptions(shape: QwenVLShape, layers?: number): TinyCheckpointOptions {
  const textLayers = Math.min(layers ?? shape.text.numLayers, shape.text.numLayers);
  const depth = Math.min(layers ?? shape.vision.depth, shape.vision.depth);
  const full = shape.vision.fullAttentionBlocks.filter((b) => b < depth);
  return {
    text: { ...shape.text, numLayers: textLayers },
    vision: { ...shape.vision, depth, fullAttentionBlocks: full.length ? full : [depth - 1] },
    tied: shape.tied,
    shards: shape.shards,
    dtype: 'BF16',
    fill: 'cheap',
    // The release layout: vision tower and projector inside the sharded model files.
    visionLayout: 'inside',
    projectorLayout: 'inside',
  };
}
