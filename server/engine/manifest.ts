import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiffusionVLError } from './errors';
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
    if (typeof m.files?.decoder !== 'string' || typeof m.files.lmHead !== 'string') throw new DiffusionVLError('model', `${path}: names no decoder (files.decoder/lmHead or decoders)`);
    return;
  }
  if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new DiffusionVLError('model', `${path}: decoders must be an object`);
  const { onnx, gguf } = d as Record<string, unknown>;
  if (onnx === undefined && gguf === undefined) throw new DiffusionVLError('model', `${path}: decoders names neither an onnx nor a gguf decoder`);
  if (onnx !== undefined) {
    const o = onnx as Record<string, unknown> | null;
    if (o === null || typeof o !== 'object' || typeof o.decoder !== 'string' || typeof o.lmHead !== 'string') throw new DiffusionVLError('model', `${path}: decoders.onnx needs decoder and lmHead file names`);
  }
  if (gguf !== undefined) {
    const g = gguf as Record<string, unknown> | null;
    if (g === null || typeof g !== 'object' || typeof g.file !== 'string' || g.file === '') throw new DiffusionVLError('model', `${path}: decoders.gguf needs a file name`);
    if (!GGUF_TYPES.includes(g.type as GgufType)) throw new DiffusionVLError('model', `${path}: decoders.gguf.type ${JSON.stringify(g.type)} is not one of ${GGUF_TYPES.join(', ')}`);
  }
}

/**
 * Reads and checks a model folder's manifest. Every field the engine reads is checked here, so that a corrupt or
 * hand-edited manifest is refused with a message naming the field instead of failing somewhere inside a run.
 */
export function readManifest(modelDir: string): ModelManifest {
  const path = join(modelDir, MANIFEST_FILE);
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch {
    throw new DiffusionVLError('model', `${path}: no manifest; is this a folder written by \`diffusionvl convert\`?`);
  }
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch (err) {
    throw new DiffusionVLError('model', `${path}: not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(m)) throw new DiffusionVLError('model', `${path}: not a JSON object`);
  if (m.format !== 'diffusionvl-onnx') throw new DiffusionVLError('model', `${path}: not a DiffusionVL ONNX manifest (format ${JSON.stringify(m.format)})`);
  if (m.formatVersion !== 1) throw new DiffusionVLError('model', `${path}: manifest format version ${JSON.stringify(m.formatVersion)} is not supported`);
  if (!ARCHITECTURES.includes(m.architecture as Architecture)) {
    throw new DiffusionVLError('model', `${path}: architecture ${JSON.stringify(m.architecture)} is not supported by this version`);
  }
  checkDecoders(path, m as unknown as ModelManifest);
  checkManifest(m, path);
  return m as unknown as ModelManifest;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Longest side of an anyres grid candidate, in pixels: the releases use 2304; a view is resized to it, so it bounds memory. */
export const MAX_PINPOINT_SIDE = 16384;

/** Largest dimension a manifest may state: far above any real model, low enough that products stay exact. */
const MAX_DIM = 1 << 24;

function checkManifest(m: Record<string, unknown>, path: string): void {
  const fail = (field: string, what: string): never => {
    throw new DiffusionVLError('model', `${path}: ${field} ${what}`);
  };
  const obj = (v: unknown, field: string): Record<string, unknown> => (isRecord(v) ? v : fail(field, 'must be an object'));
  const int = (o: Record<string, unknown>, key: string, field: string, min = 1): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_DIM) fail(`${field}.${key}`, `must be an integer from ${min} to ${MAX_DIM}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (o: Record<string, unknown>, key: string, field: string): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${field}.${key}`, `must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const oneOf = <T>(v: unknown, allowed: readonly T[], field: string): T => (allowed.includes(v as T) ? (v as T) : fail(field, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`));
  // A file inside the model folder: a plain name, never a path that leads out of it.
  const fileName = (o: Record<string, unknown>, key: string, field: string): string => {
    const v = o[key];
    if (typeof v !== 'string' || v === '' || v === '.' || v === '..' || /[/\\\0]/.test(v)) fail(`${field}.${key}`, `must be a file name in the model folder, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const triple = (o: Record<string, unknown>, key: string, field: string, positive: boolean): void => {
    const v = o[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
      fail(`${field}.${key}`, `must be 3 ${positive ? 'positive ' : ''}numbers, got ${JSON.stringify(v)}`);
    }
  };

  oneOf(m.precision, PRECISIONS, 'precision');
  oneOf(m.kvDtype, ['float32', 'float16'], 'kvDtype');
  int(m, 'blockSize', 'manifest');
  const text = obj(m.text, 'text');
  for (const k of ['hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'intermediateSize', 'vocabSize']) int(text, k, 'text');
  const vocab = text.vocabSize as number;
  if ((text.numHeads as number) % (text.numKvHeads as number) !== 0) fail('text.numKvHeads', 'must divide text.numHeads');
  if (!(num(text, 'ropeTheta', 'text') > 0)) fail('text.ropeTheta', 'must be positive');
  if (!(num(text, 'rmsNormEps', 'text') > 0)) fail('text.rmsNormEps', 'must be positive');
  if (typeof text.tiedLmHead !== 'boolean') fail('text.tiedLmHead', 'must be true or false');

  const tokens = obj(m.tokens, 'tokens');
  for (const k of ['mask', 'eos', 'pad']) {
    const id = int(tokens, k, 'tokens', 0);
    if (id >= vocab) fail(`tokens.${k}`, `${id} is outside the vocabulary (text.vocabSize ${vocab})`);
  }
  const placeholder = tokens.imagePlaceholder;
  if (typeof placeholder !== 'number' || !Number.isInteger(placeholder) || placeholder >= 0) fail('tokens.imagePlaceholder', `must be a negative integer, got ${JSON.stringify(placeholder)}`);

  const files = obj(m.files, 'files');
  fileName(files, 'vision', 'files');
  for (const k of ['decoder', 'lmHead']) if (files[k] !== undefined) fileName(files, k, 'files');
  if (files.tokenizer !== undefined) fileName(files, 'tokenizer', 'files');

  const emb = obj(m.embeddings, 'embeddings');
  fileName(emb, 'file', 'embeddings');
  oneOf(emb.dtype, ['float32', 'float16'], 'embeddings.dtype');
  if (int(emb, 'rows', 'embeddings') !== vocab) fail('embeddings.rows', `must equal text.vocabSize ${vocab}`);
  if (int(emb, 'cols', 'embeddings') !== text.hiddenSize) fail('embeddings.cols', `must equal text.hiddenSize ${String(text.hiddenSize)}`);

  const vision = obj(m.vision, 'vision');
  const image = obj(m.image, 'image');
  if (vision.outHiddenSize !== text.hiddenSize) fail('vision.outHiddenSize', `must equal text.hiddenSize ${String(text.hiddenSize)}`);
  if (m.architecture === 'diffusionvl_qwenvl') {
    for (const k of ['depth', 'hiddenSize', 'numHeads', 'headDim', 'intermediateSize', 'patchSize', 'temporalPatchSize', 'spatialMergeSize', 'windowSize', 'outHiddenSize', 'inChannels']) {
      int(vision, k, 'vision');
    }
    const blocks = vision.fullAttentionBlocks;
    if (!Array.isArray(blocks) || !blocks.every((b) => Number.isInteger(b) && b >= 0 && b < (vision.depth as number))) {
      fail('vision.fullAttentionBlocks', `must list block indices below vision.depth, got ${JSON.stringify(blocks)}`);
    }
    const minPixels = int(image, 'minPixels', 'image');
    if (int(image, 'maxPixels', 'image') < minPixels) fail('image.maxPixels', 'must be at least image.minPixels');
    triple(image, 'mean', 'image', false);
    triple(image, 'std', 'image', true);
  } else {
    for (const k of ['numLayers', 'hiddenSize', 'numHeads', 'headDim', 'intermediateSize', 'patchSize', 'imageSize', 'outHiddenSize']) int(vision, k, 'vision');
    if (!(num(vision, 'layerNormEps', 'vision') > 0)) fail('vision.layerNormEps', 'must be positive');
    if (typeof image.aspectRatio !== 'string' || !(image.aspectRatio === 'pad' || /^anyres_max_[1-9]\d*$/.test(image.aspectRatio))) {
      fail('image.aspectRatio', `must be "pad" or "anyres_max_N", got ${JSON.stringify(image.aspectRatio)}`);
    }
    const pins = image.gridPinpoints;
    if (!Array.isArray(pins) || !pins.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => Number.isInteger(x) && x > 0 && x <= MAX_PINPOINT_SIDE))) {
      fail('image.gridPinpoints', `must be a list of [width, height] pairs of integers from 1 to ${MAX_PINPOINT_SIDE}`);
    }
    if (image.aspectRatio !== 'pad' && (pins as unknown[]).length === 0) fail('image.gridPinpoints', 'must not be empty with anyres');
    oneOf(image.mergeType, ['spatial_unpad'], 'image.mergeType');
    fileName(image, 'newlineFile', 'image');
    if (m.maxPromptRows !== undefined) int(m, 'maxPromptRows', 'manifest');
  }
}

/** Narrows a manifest to the QwenVL family (for code that only makes sense there: its tests, the synthetic trainer). */
export function asQwenVL(m: ModelManifest): QwenVLManifest {
  if (m.architecture !== 'diffusionvl_qwenvl') throw new Error(`expected a DiffusionVL-QwenVL model, got ${m.architecture}`);
  return m;
}
