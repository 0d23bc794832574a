import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST_FILE } from './manifestFile';

/**
 * The manifest a converted model folder carries (`manifest.json`). The converter writes it; the engine reads every
 * dimension, special id and file name from it instead of hard-coding them.
 */
export interface ModelManifest {
  format: 'diffusionvl-onnx';
  formatVersion: 1;
  architecture: 'diffusionvl_qwenvl';
  precision: Precision;
  /** Element type of the decoder's past/new key-value tensors. */
  kvDtype: 'float32' | 'float16';
  blockSize: number;
  text: TextDims;
  vision: VisionDims;
  image: ImageConfig;
  tokens: SpecialTokens;
  files: ModelFiles;
  embeddings: { file: string; dtype: 'float32' | 'float16'; rows: number; cols: number };
  /** Checkpoint files the model was converted from, with their SHA-256. */
  source: { files: { name: string; bytes: number; sha256: string }[] };
  converter: { name: string; version: string };
}

export type Precision = 'fp32' | 'fp16' | 'int4';

export interface TextDims {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  ropeTheta: number;
  rmsNormEps: number;
  tiedLmHead: boolean;
}

export interface VisionDims {
  depth: number;
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  intermediateSize: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  windowSize: number;
  fullAttentionBlocks: number[];
  outHiddenSize: number;
  inChannels: number;
}

export interface ImageConfig {
  minPixels: number;
  maxPixels: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export interface SpecialTokens {
  /** Diffusion MASK id (151671 for the Qwen releases): an embedding row, not a tokenizer token. */
  mask: number;
  /** Stop token (`<|im_end|>`). */
  eos: number;
  /** Tokenizer pad (`<|endoftext|>`). */
  pad: number;
  /** Placeholder in prompt ids where image features are spliced (-200). */
  imagePlaceholder: number;
}

export interface ModelFiles {
  decoder: string;
  lmHead: string;
  vision: string;
  /** Hugging Face tokenizer.json, when the checkpoint had one. */
  tokenizer?: string;
}

export { MANIFEST_FILE };

export function readManifest(modelDir: string): ModelManifest {
  const path = join(modelDir, MANIFEST_FILE);
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`${path}: no manifest; is this a folder written by \`diffusionvl convert\`?`);
  }
  let m: ModelManifest;
  try {
    m = JSON.parse(raw) as ModelManifest;
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (m.format !== 'diffusionvl-onnx') throw new Error(`${path}: not a DiffusionVL ONNX manifest (format ${String(m.format)})`);
  if (m.formatVersion !== 1) throw new Error(`${path}: manifest format version ${m.formatVersion} is not supported`);
  return m;
}
