/**
 * Typed, validated view of a DiffusionVL-QwenVL checkpoint's JSON configuration (config.json, vision_config.json,
 * preprocessor_config.json). Class defaults of the Python configs are deliberately NOT used for dimensions: a
 * missing `hidden_size` would silently become 3584 there (see the inference spec, config fields).
 */
import { DiffusionVLError } from '../engine/errors';
import type { VisionDims } from '../engine/manifest';

export interface QwenVLTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** From the config, or (when no config states it) inferred from whether `lm_head.weight` is stored. */
  tieWordEmbeddings: boolean;
  /** `rope_scaling.mrope_section` when present (sums to headDim/2). */
  mropeSection?: number[];
  maxPositionEmbeddings?: number;
}

/** The vision tower's dimensions, exactly what the converted model's manifest records. */
export type QwenVLVisionConfig = VisionDims;

export interface QwenVLCheckpointConfig {
  modelType: 'diffusionvl_qwenvl';
  architecture: 'DiffusionVLQwenVLForCausalLM';
  text: QwenVLTextConfig;
  vision: QwenVLVisionConfig;
  bd3lm: { enabled: boolean; blockSize: number };
  /** Image processor bounds used by the model (config.json `min_pixels` / `max_pixels`). */
  pixels: { minPixels: number; maxPixels: number };
  image: { mean: [number, number, number]; std: [number, number, number] };
  tokens: { bos?: number; eos: number; pad: number; mask: number; imageToken?: number };
  projectorType: 'qwen_merger';
  /** Fields that were absent and took a documented default, for the converter's log. */
  defaulted: string[];
  /** Disagreements resolved by precedence (e.g. text_config vs top level), for the converter's log. */
  warnings: string[];
}

export type Json = Record<string, unknown>;

export const ACCEPTED_MODEL_TYPE = 'diffusionvl_qwenvl';
export const ACCEPTED_ARCHITECTURE = 'DiffusionVLQwenVLForCausalLM';
/** DiffusionVL's own image-bound defaults (DEFAULT_MIN_PIXELS / DEFAULT_MAX_PIXELS), used when config omits them. */
const DEFAULT_MIN_PIXELS = 384 * 384;
const DEFAULT_MAX_PIXELS = 512 * 512;
/** Qwen2VLImageProcessor defaults (OpenAI CLIP statistics). */
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const DEFAULT_EOS = 151645;
const DEFAULT_MASK = 151671;
const DEFAULT_PAD = 151643;

export function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Looks a field up in an ordered list of JSON sources, remembering where it came from for messages. */
export class FieldReader {
  constructor(
    private readonly sources: { label: string; obj: Json | undefined }[],
    private readonly out: { defaulted: string[]; warnings: string[] },
  ) {}

  private find(key: string): { label: string; value: unknown } | undefined {
    let first: { label: string; value: unknown } | undefined;
    for (const s of this.sources) {
      if (!s.obj || !(key in s.obj) || s.obj[key] === null) continue;
      const value = s.obj[key];
      if (!first) first = { label: s.label, value };
      else if (JSON.stringify(first.value) !== JSON.stringify(value)) {
        this.out.warnings.push(`${key}: ${first.label} says ${JSON.stringify(first.value)}, ${s.label} says ${JSON.stringify(value)}; using ${first.label}`);
      }
    }
    return first;
  }

  private where(key: string, label?: string): string {
    return label ? `${label}: ${key}` : `${this.sources.map((s) => s.label).join(' / ')}: ${key}`;
  }

  private missing(key: string): never {
    throw new Error(`${this.where(key)} is missing (required; class defaults are not trusted for this field)`);
  }

  dim(key: string, fallback?: number): number {
    const f = this.find(key);
    if (!f) {
      if (fallback === undefined) this.missing(key);
      this.out.defaulted.push(`${key}=${fallback}`);
      return fallback;
    }
    if (typeof f.value !== 'number' || !Number.isSafeInteger(f.value)) {
      throw new Error(`${this.where(key, f.label)} must be an integer, got ${JSON.stringify(f.value)}`);
    }
    if (f.value <= 0) throw new Error(`${this.where(key, f.label)} must be positive, got ${f.value}`);
    return f.value;
  }

  optionalInt(key: string): number | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (typeof f.value !== 'number' || !Number.isSafeInteger(f.value)) {
      throw new Error(`${this.where(key, f.label)} must be an integer, got ${JSON.stringify(f.value)}`);
    }
    return f.value;
  }

  positive(key: string, fallback?: number): number {
    const f = this.find(key);
    if (!f) {
      if (fallback === undefined) this.missing(key);
      this.out.defaulted.push(`${key}=${fallback}`);
      return fallback;
    }
    if (typeof f.value !== 'number' || !Number.isFinite(f.value) || f.value <= 0) {
      throw new Error(`${this.where(key, f.label)} must be a positive number, got ${JSON.stringify(f.value)}`);
    }
    return f.value;
  }

  bool(key: string): boolean | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (typeof f.value !== 'boolean') throw new Error(`${this.where(key, f.label)} must be true or false, got ${JSON.stringify(f.value)}`);
    return f.value;
  }

  intList(key: string): number[] {
    const f = this.find(key);
    if (!f) this.missing(key);
    if (!Array.isArray(f.value) || !f.value.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      throw new Error(`${this.where(key, f.label)} must be a list of non-negative integers, got ${JSON.stringify(f.value)}`);
    }
    return f.value as number[];
  }

  string(key: string): string | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (typeof f.value !== 'string') throw new Error(`${this.where(key, f.label)} must be a string, got ${JSON.stringify(f.value)}`);
    return f.value;
  }

  raw(key: string): { label: string; value: unknown } | undefined {
    return this.find(key);
  }
}

export const SIGLIP_MODEL_TYPE = 'diffusionvl_qwen';
export const SIGLIP_ARCHITECTURE = 'DiffusionVLQwenForCausalLM';

/** Which DiffusionVL family a config.json describes; anything else is rejected before any weights are read. */
export function detectArchitecture(config: Json): 'diffusionvl_qwenvl' | 'diffusionvl_qwen' {
  const mt = config.model_type;
  const archs = config.architectures;
  if (archs !== undefined && (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string'))) {
    throw new Error(`config.json: architectures must be a list of strings, got ${JSON.stringify(archs)}`);
  }
  const archList = (archs ?? []) as string[];
  if (mt === SIGLIP_MODEL_TYPE || (mt === undefined && archList.includes(SIGLIP_ARCHITECTURE))) return SIGLIP_MODEL_TYPE;
  if (mt !== undefined && mt !== ACCEPTED_MODEL_TYPE) {
    throw new DiffusionVLError('unsupportedCheckpoint', `config.json: unknown model_type ${JSON.stringify(mt)}; expected "${ACCEPTED_MODEL_TYPE}" or "${SIGLIP_MODEL_TYPE}"`);
  }
  if (archs !== undefined && !archList.includes(ACCEPTED_ARCHITECTURE)) {
    throw new DiffusionVLError('unsupportedCheckpoint', `config.json: unknown architectures ${JSON.stringify(archs)}; expected ["${ACCEPTED_ARCHITECTURE}"] or ["${SIGLIP_ARCHITECTURE}"]`);
  }
  if (mt === undefined && archs === undefined) {
    throw new Error(`config.json: neither model_type nor architectures is set; expected model_type "${ACCEPTED_MODEL_TYPE}" or "${SIGLIP_MODEL_TYPE}"`);
  }
  return ACCEPTED_MODEL_TYPE;
}

/** Accepts a DiffusionVL-QwenVL config only (the SigLIP family has its own reader: siglipConfig.ts). */
export function checkModelIdentity(config: Json): void {
  if (detectArchitecture(config) !== ACCEPTED_MODEL_TYPE) {
    throw new DiffusionVLError('unsupportedCheckpoint', `config.json: model_type ${SIGLIP_MODEL_TYPE} is the SigLIP variant; it is read by the SigLIP checkpoint reader`);
  }
}

export interface ConfigSources {
  config: Json;
  /** Parsed vision_config.json, when the checkpoint has one (it wins over config.json's vision_config). */
  visionConfigFile?: Json;
  preprocessor?: Json;
  /** Whether the weights include `lm_head.weight`; decides tying only when no config states it. */
  hasLmHead: boolean;
}

/** Log of defaulted fields and precedence warnings, collected while parsing. */
export interface ConfigLog {
  defaulted: string[];
  warnings: string[];
}

/**
 * The Qwen2 text section shared by every DiffusionVL release: `text_config` when present, the top-level copies
 * filling its gaps (never class defaults). Returns the reader too, for fields such as special ids.
 */
export function parseTextConfig(config: Json, hasLmHead: boolean, log: ConfigLog): { text: QwenVLTextConfig; t: FieldReader } {
  const src = { hasLmHead };
  const textConfig = config.text_config;
  if (textConfig !== undefined && textConfig !== null && !isObject(textConfig)) throw new Error('config.json: text_config must be an object');
  // text_config is what the model is built from; the top-level copies fill its gaps (never class defaults).
  const t = new FieldReader(
    [
      { label: 'config.json text_config', obj: isObject(textConfig) ? textConfig : undefined },
      { label: 'config.json', obj: config },
    ],
    log,
  );
  const hiddenSize = t.dim('hidden_size');
  const numHeads = t.dim('num_attention_heads');
  const numKvHeads = t.dim('num_key_value_heads');
  if (hiddenSize % numHeads !== 0) {
    throw new Error(`config.json: num_attention_heads=${numHeads} does not divide hidden_size=${hiddenSize}`);
  }
  if (numHeads % numKvHeads !== 0) {
    throw new Error(`config.json: num_key_value_heads=${numKvHeads} does not divide num_attention_heads=${numHeads}`);
  }
  const headDim = hiddenSize / numHeads;
  const explicitHeadDim = t.optionalInt('head_dim');
  if (explicitHeadDim !== undefined && explicitHeadDim !== headDim) {
    throw new Error(`config.json: head_dim=${explicitHeadDim} but hidden_size/num_attention_heads=${headDim}; Qwen2 layers need them equal`);
  }
  const ropeScaling = t.raw('rope_scaling')?.value ?? t.raw('rope_parameters')?.value;
  let ropeTheta: number;
  if (t.raw('rope_theta')) ropeTheta = t.positive('rope_theta');
  else if (isObject(ropeScaling) && typeof ropeScaling.rope_theta === 'number' && ropeScaling.rope_theta > 0) ropeTheta = ropeScaling.rope_theta;
  else ropeTheta = t.positive('rope_theta');
  let mropeSection: number[] | undefined;
  if (isObject(ropeScaling) && ropeScaling.mrope_section !== undefined) {
    const sec = ropeScaling.mrope_section;
    if (!Array.isArray(sec) || !sec.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      throw new Error(`config.json: rope_scaling.mrope_section must be a list of non-negative integers, got ${JSON.stringify(sec)}`);
    }
    const sum = (sec as number[]).reduce((a, b) => a + b, 0);
    if (sum !== headDim / 2) throw new Error(`config.json: rope_scaling.mrope_section ${JSON.stringify(sec)} sums to ${sum}, expected head_dim/2=${headDim / 2}`);
    mropeSection = sec as number[];
  }
  // Serialized sub-configs may carry the class default (true) for tying; when the two places disagree, the
  // weights decide: a stored lm_head means a separate head.
  const tieText = isObject(textConfig) ? textConfig.tie_word_embeddings : undefined;
  const tieTop = config.tie_word_embeddings;
  for (const [label, val] of [['config.json text_config', tieText], ['config.json', tieTop]] as const) {
    if (val !== undefined && val !== null && typeof val !== 'boolean') {
      throw new Error(`${label}: tie_word_embeddings must be true or false, got ${JSON.stringify(val)}`);
    }
  }
  let tie = (tieText ?? tieTop ?? undefined) as boolean | undefined;
  if (typeof tieText === 'boolean' && typeof tieTop === 'boolean' && tieText !== tieTop) {
    tie = !src.hasLmHead;
    log.warnings.push(`tie_word_embeddings: text_config says ${tieText}, top level says ${tieTop}; using ${tie} because lm_head.weight is ${src.hasLmHead ? '' : 'not '}stored`);
  }
  if (tie === undefined) log.defaulted.push(`tie_word_embeddings=${!src.hasLmHead} (inferred from the weights)`);
  const text: QwenVLTextConfig = {
    vocabSize: t.dim('vocab_size'),
    hiddenSize,
    intermediateSize: t.dim('intermediate_size'),
    numLayers: t.dim('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: t.positive('rms_norm_eps'),
    ropeTheta,
    tieWordEmbeddings: tie ?? !src.hasLmHead,
    mropeSection,
    maxPositionEmbeddings: t.optionalInt('max_position_embeddings'),
  };

  return { text, t };
}

/** Special ids: EOS from the config (<|im_end|> preferred), MASK hard-coded by the Qwen releases unless stated. */
export function parseSpecialTokens(t: FieldReader, top: FieldReader, vocabSize: number): QwenVLCheckpointConfig['tokens'] {
  const eosRaw = t.raw('eos_token_id')?.value;
  if (Array.isArray(eosRaw) && (eosRaw.length === 0 || !eosRaw.every((x) => Number.isSafeInteger(x)))) {
    throw new Error(`config.json: eos_token_id must be an integer or a non-empty list of integers, got ${JSON.stringify(eosRaw)}`);
  }
  // Some configs list several stop ids; the generator stops on <|im_end|>, which must be among them.
  const eos = Array.isArray(eosRaw) ? (eosRaw.includes(DEFAULT_EOS) ? DEFAULT_EOS : (eosRaw[0] as number)) : t.optionalInt('eos_token_id') ?? DEFAULT_EOS;
  // MASK is an embedding row, not a tokenizer token: the Qwen releases hard-code 151671 in their generate loop;
  // models with their own tokenizer name theirs in config.json.
  const mask = top.optionalInt('mask_token_id') ?? DEFAULT_MASK;
  const pad = t.optionalInt('pad_token_id') ?? DEFAULT_PAD;
  for (const [key, id] of [['mask_token_id', mask], ['eos_token_id', eos], ['pad_token_id', pad]] as const) {
    if (id < 0 || id >= vocabSize) {
      throw new Error(`config.json: ${key} ${id} is outside the embedding table (vocab_size ${vocabSize})`);
    }
  }
  return { bos: t.optionalInt('bos_token_id'), eos, pad, mask, imageToken: top.optionalInt('image_token_id') };

}

/** Validates the JSON configuration and returns the typed config; every message names the file and field. */
export function parseQwenVLConfig(src: ConfigSources): QwenVLCheckpointConfig {
  const { config } = src;
  if (!isObject(config)) throw new Error('config.json: not a JSON object');
  checkModelIdentity(config);
  const log = { defaulted: [] as string[], warnings: [] as string[] };

  const { text, t } = parseTextConfig(config, src.hasLmHead, log);

  const nested = config.vision_config;
  if (nested !== undefined && nested !== null && !isObject(nested)) throw new Error('config.json: vision_config must be an object');
  if (!src.visionConfigFile && !isObject(nested)) {
    throw new Error('config.json: no vision_config, and no vision_config.json next to it; the vision tower cannot be sized');
  }
  // The vision tower loader reads vision_config.json; config.json's copy only fills its gaps.
  const v = new FieldReader(
    [
      { label: 'vision_config.json', obj: src.visionConfigFile },
      { label: 'config.json vision_config', obj: isObject(nested) ? nested : undefined },
    ],
    log,
  );
  const vHidden = v.dim('hidden_size');
  const vHeads = v.dim('num_heads');
  if (vHidden % vHeads !== 0) throw new Error(`vision config: num_heads=${vHeads} does not divide hidden_size=${vHidden}`);
  const depth = v.dim('depth');
  const fullAttentionBlocks = v.intList('fullatt_block_indexes');
  const bad = fullAttentionBlocks.find((b) => b >= depth);
  if (bad !== undefined) throw new Error(`vision config: fullatt_block_indexes contains ${bad}, but depth=${depth}`);
  const vision: QwenVLVisionConfig = {
    depth,
    hiddenSize: vHidden,
    numHeads: vHeads,
    headDim: vHidden / vHeads,
    intermediateSize: v.dim('intermediate_size'),
    patchSize: v.dim('patch_size'),
    temporalPatchSize: v.dim('temporal_patch_size'),
    spatialMergeSize: v.dim('spatial_merge_size'),
    windowSize: v.dim('window_size'),
    fullAttentionBlocks,
    outHiddenSize: v.dim('out_hidden_size'),
    inChannels: v.dim('in_channels', 3),
  };
  if (vision.outHiddenSize !== text.hiddenSize) {
    throw new Error(`vision config: out_hidden_size=${vision.outHiddenSize} must equal the text hidden_size=${text.hiddenSize}`);
  }
  if (vision.windowSize % (vision.patchSize * vision.spatialMergeSize) !== 0) {
    throw new Error(`vision config: window_size=${vision.windowSize} is not a multiple of patch_size·spatial_merge_size=${vision.patchSize * vision.spatialMergeSize}`);
  }

  const top = new FieldReader([{ label: 'config.json', obj: config }], log);
  const projectorType = top.string('mm_projector_type');
  if (projectorType !== undefined && projectorType !== 'qwen_merger') {
    throw new Error(`config.json: mm_projector_type ${JSON.stringify(projectorType)} is not supported; DiffusionVL-QwenVL uses "qwen_merger"`);
  }
  const enabled = top.bool('enable_bd3lm');
  if (enabled === false) log.warnings.push('enable_bd3lm is false in config.json; the official evaluation forces it on');
  const bd3lm = { enabled: enabled ?? true, blockSize: top.dim('bd3lm_block_size', 8) };
  const pixels = { minPixels: top.dim('min_pixels', DEFAULT_MIN_PIXELS), maxPixels: top.dim('max_pixels', DEFAULT_MAX_PIXELS) };
  if (pixels.minPixels > pixels.maxPixels) throw new Error(`config.json: min_pixels=${pixels.minPixels} exceeds max_pixels=${pixels.maxPixels}`);

  const image = { mean: CLIP_MEAN, std: CLIP_STD };
  if (src.preprocessor) {
    const triple = (key: string): [number, number, number] | undefined => {
      const val = src.preprocessor?.[key];
      if (val === undefined) return undefined;
      if (!Array.isArray(val) || val.length !== 3 || !val.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new Error(`preprocessor_config.json: ${key} must be a list of 3 numbers, got ${JSON.stringify(val)}`);
      }
      return val as [number, number, number];
    };
    image.mean = triple('image_mean') ?? CLIP_MEAN;
    image.std = triple('image_std') ?? CLIP_STD;
    if (image.std.some((s) => s <= 0)) throw new Error('preprocessor_config.json: image_std values must be positive');
  }

  const tokens = parseSpecialTokens(t, top, text.vocabSize);

  return {
    modelType: ACCEPTED_MODEL_TYPE,
    architecture: ACCEPTED_ARCHITECTURE,
    text,
    vision,
    bd3lm,
    pixels,
    image,
    tokens,
    projectorType: 'qwen_merger',
    defaulted: [...new Set(log.defaulted)],
    warnings: [...new Set(log.warnings)],
  };
}
