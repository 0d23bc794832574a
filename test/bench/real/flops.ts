import type { ModelManifest, QwenVLManifest } from '../../../server/engine/manifest';

/**
 * Multiply-add work of the linear layers (2 flops per weight per row), the part int4 kernels run. Attention
 * scores, norms and rotary are left out, so a phase's rate against the micro-benchmark is a lower bound of how
 * well its matmuls run.
 */
export function decoderFlopsPerRow(m: ModelManifest): number {
  const t = m.text;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  const perLayer = t.hiddenSize * (q + 2 * kv) + q * t.hiddenSize + 3 * t.hiddenSize * t.intermediateSize;
  return 2 * perLayer * t.numLayers;
}

export function headFlopsPerRow(m: ModelManifest): number {
  return 2 * m.text.hiddenSize * m.text.vocabSize;
}

/** Vision tower + merger of a QwenVL model for an image of `tokens` merged tokens (patches = tokens · merge²). */
export function visionFlops(m: QwenVLManifest, tokens: number): number {
  const v = m.vision;
  const unit = v.spatialMergeSize ** 2;
  const patches = tokens * unit;
  const C = v.hiddenSize;
  const patchDim = v.inChannels * v.temporalPatchSize * v.patchSize ** 2;
  const perBlock = 3 * C * C + C * C + 3 * C * v.intermediateSize;
  const merger = unit * C * unit * C + unit * C * v.outHiddenSize;
  return 2 * (patches * (patchDim * C + v.depth * perBlock) + tokens * merger);
}
