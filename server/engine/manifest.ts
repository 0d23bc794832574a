import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST_FILE } from './manifestFile';

/**
 * The manifest a converted model folder carries (`manifest.json`). The converter writes it; the engine reads every
 * dimension, special id and file name from it instead of hard-coding them.
 */
interface ManifestCommon {
  format: 'diffusionvl-onnx';
  formatVersion: 1;
  precision: Precision;
  /** Element type of the decoder's past/new key-value tensors. */
  kvDtype: 'float32' | 'float16';
  blockSize: number;
  text: TextDims;
  tokens: SpecialTokens;
  files: ModelFiles;
  /** Which text decoders the folder holds; absent in manifests written before GGUF decoders (read as ONNX only). */
  decoders?: ModelDecoders;
  embeddings: { file: string; dtype: 'float32' | 'float16'; rows: number; cols: number };
  /** Checkpoint files the model was converted from, with their SHA-256. */
  source: { files: { name: string; bytes: number; sha256: string }[] };
  converter: { name: string; version: string };
}

/** DiffusionVL-QwenVL (Qwen2.5-VL tower, 3-D RoPE positions collapsed to 1-D by the reference loop). */
export interface QwenVLManifest extends ManifestCommon {
  architecture: 'diffusionvl_qwenvl';
  vision: VisionDims;
  image: ImageConfig;
}

/** DiffusionVL-Qwen (SigLIP tower, mlp2x_gelu projector, LLaVA-OneVision anyres tiling). */
export interface SiglipManifest extends ManifestCommon {
  architecture: 'diffusionvl_qwen';
  vision: SiglipVisionDims;
  image: AnyresConfig;
  /** `tokenizer_model_max_length`: the official image path truncates the spliced prompt to this many rows. */
  maxPromptRows?: number;
}

export type ModelManifest = QwenVLManifest | SiglipManifest;
export type Architecture = ModelManifest['architecture'];
export const ARCHITECTURES: readonly Architecture[] = ['diffusionvl_qwenvl', 'diffusionvl_qwen'];

/** The SigLIP tower as run (layers already reduced by one, as the official loader does) and its projector. */
export interface SiglipVisionDims {
  /** Encoder layers that run. */
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  intermediateSize: number;
  layerNormEps: number;
  /** Patch-embedding kernel/stride (14) and the view size the processor produces (384). */
  patchSize: number;
  imageSize: number;
  /** Projected feature width (= text hidden size). */
  outHiddenSize: number;
}

/** LLaVA-OneVision image handling from config.json, plus where the learned image-newline vector lives. */
export interface AnyresConfig {
  /** `anyres_max_N` or `pad`. */
  aspectRatio: string;
  /** [width, height] candidates in config order (select_best_resolution reads them as (w, h)). */
  gridPinpoints: [number, number][];
  mergeType: 'spatial_unpad';
  /** float32 [outHiddenSize] file. */
  newlineFile: string;
}

/** Weight precisions a converted model can have (the converter's `--precision`, prepareModel's `precision`). */
export const PRECISIONS = ['fp32', 'fp16', 'int4'] as const;
export type Precision = (typeof PRECISIONS)[number];

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
  /** The ONNX decoder and head (also under `decoders.onnx`); absent in a folder with only a GGUF decoder. */
  decoder?: string;
  lmHead?: string;
  vision: string;
  /** Hugging Face tokenizer.json, when the checkpoint had one. */
  tokenizer?: string;
}

/** Which text decoders `convert --decoder` writes. */
export const DECODER_KINDS = ['onnx', 'gguf', 'both'] as const;
export type DecoderKind = (typeof DECODER_KINDS)[number];

/** Tensor types of a GGUF decoder (`convert --decoder gguf --precision`): f32/f16 written by the converter, the rest
 * by llama.cpp's own quantiser. */
export const GGUF_TYPES = ['fp32', 'fp16', 'q8_0', 'q4_0', 'q4_k_m'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

export interface ModelDecoders {
  /** The ONNX Runtime decoder and LM head graphs, at the manifest's `precision`. */
  onnx?: { decoder: string; lmHead: string };
  /** One llama.cpp model file (arch qwen2) holding the decoder and the LM head. */
  gguf?: { file: string; type: GgufType };
}

export { MANIFEST_FILE };

/** The decoders a manifest declares; a manifest from before the field has the ONNX one its `files` name. */
export function manifestDecoders(m: Pick<ManifestCommon, 'decoders' | 'files'>): ModelDecoders {
  if (m.decoders) return m.decoders;
  return m.files.decoder && m.files.lmHead ? { onnx: { decoder: m.files.decoder, lmHead: m.files.lmHead } } : {};
}

/** The ONNX decoder and head files; throws with the remedy when the folder has only a GGUF decoder. */
export function onnxDecoderFiles(m: Pick<ManifestCommon, 'decoders' | 'files'>): { decoder: string; lmHead: string } {
  const onnx = manifestDecoders(m).onnx;
  if (!onnx) throw new Error('this model folder has no ONNX decoder (converted with --decoder gguf); convert it with --decoder onnx or both to run it on ONNX Runtime');
  return onnx;
}

function checkDecoders(path: string, m: ModelManifest): void {
  const d: unknown = m.decoders;
  if (d === undefined) {
    if (typeof m.files?.decoder !== 'string' || typeof m.files.lmHead !== 'string') throw new Error(`${path}: names no decoder (files.decoder/lmHead or decoders)`);
    return;
  }
  if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new Error(`${path}: decoders must be an object`);
  const { onnx, gguf } = d as Record<string, unknown>;
  if (onnx === undefined && gguf === undefined) throw new Error(`${path}: decoders names neither an onnx nor a gguf decoder`);
  if (onnx !== undefined) {
    const o = onnx as Record<string, unknown> | null;
    if (o === null || typeof o !== 'object' || typeof o.decoder !== 'string' || typeof o.lmHead !== 'string') throw new Error(`${path}: decoders.onnx needs decoder and lmHead file names`);
  }
  if (gguf !== undefined) {
    const g = gguf as Record<string, unknown> | null;
    if (g === null || typeof g !== 'object' || typeof g.file !== 'string' || g.file === '') throw new Error(`${path}: decoders.gguf needs a file name`);
    if (!GGUF_TYPES.includes(g.type as GgufType)) throw new Error(`${path}: decoders.gguf.type ${JSON.stringify(g.type)} is not one of ${GGUF_TYPES.join(', ')}`);
  }
}

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
  if (!ARCHITECTURES.includes(m.architecture)) throw new Error(`${path}: architecture ${JSON.stringify(m.architecture)} is not supported by this version`);
  checkDecoders(path, m);
  return m;
}

/** Narrows a manifest to the QwenVL family (for code that only makes sense there: its tests, the synthetic trainer). */
export function asQwenVL(m: ModelManifest): QwenVLManifest {
  if (m.architecture !== 'diffusionvl_qwenvl') throw new Error(`expected a DiffusionVL-QwenVL model, got ${m.architecture}`);
  return m;
}
