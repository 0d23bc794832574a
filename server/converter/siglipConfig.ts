/**
 * Typed, validated view of a DiffusionVL-Qwen (SigLIP / LLaVA-OneVision) checkpoint's configuration: the Qwen2 text
 * part and the LLaVA fields of config.json, plus the SigLIP tower's own config. The official loader takes the tower's
 * config from the repo named by `mm_vision_tower` (SigLipVisionConfig, class defaults for missing fields), never from
 * config.json; the grid assembly always uses 384-px views of 14-px patches (a default SigLipVisionConfig()).
 */
import { MAX_PINPOINT_SIDE, type AnyresConfig, type SiglipVisionDims } from '../engine/manifest';
import {
  FieldReader,
  isObject,
  parseSpecialTokens,
  parseTextConfig,
  SIGLIP_MODEL_TYPE,
  type ConfigLog,
  type Json,
  type QwenVLCheckpointConfig,
  type QwenVLTextConfig,
} from './checkpointConfig';

export interface SiglipCheckpointConfig {
  modelType: typeof SIGLIP_MODEL_TYPE;
  text: QwenVLTextConfig;
  /** The tower as it runs (hub layers − 1). */
  vision: SiglipVisionDims;
  /** Layers in the tower's own config (one more than run). */
  hubLayers: number;
  anyres: Omit<AnyresConfig, 'newlineFile'>;
  /** `mm_vision_tower` as written in config.json. */
  visionTower: string;
  /** Where the tower config came from (a file, or the built-in table of known hub ids). */
  visionConfigSource: string;
  /** `tokenizer_model_max_length`: the official code truncates the embedded prompt to it. */
  maxPromptRows?: number;
  bd3lm: { enabled: boolean; blockSize: number };
  tokens: QwenVLCheckpointConfig['tokens'];
  defaulted: string[];
  warnings: string[];
}

/** SigLipVisionConfig class defaults (siglip_encoder.py), which the official loader uses for missing fields. */
export const SIGLIP_CLASS_DEFAULTS = {
  hidden_size: 1152,
  intermediate_size: 4304,
  num_hidden_layers: 27,
  num_attention_heads: 16,
  num_channels: 3,
  image_size: 384,
  patch_size: 14,
  hidden_act: 'gelu_pytorch_tanh',
  layer_norm_eps: 1e-6,
} as const;

/**
 * Hub towers whose config.json the converter knows without a download (the SigLIP / SigLIP2 so400m-patch14-384
 * vision configs state exactly the class defaults).
 */
export const KNOWN_SIGLIP_TOWERS: Record<string, Json> = {
  'google/siglip2-so400m-patch14-384': { model_type: 'siglip', vision_config: { ...SIGLIP_CLASS_DEFAULTS } },
  'google/siglip-so400m-patch14-384': { model_type: 'siglip', vision_config: { ...SIGLIP_CLASS_DEFAULTS } },
};

/** The fixed view geometry of the grid assembly (a default SigLipVisionConfig(): 384 / 14 → 27 patches per side). */
export const ANYRES_VIEW = { imageSize: 384, patchSize: 14 } as const;

/** Most grid candidates a config may list (the releases use 36: 1x1 to 6x6). */
const MAX_GRID_PINPOINTS = 1024;

/** `image_grid_pinpoints` as a list of [w, h], or the "(1x1),...,(6x6)" string form expanded as train.py/mm_utils do. */
export function parseGridPinpoints(value: unknown, patch: number): [number, number][] {
  if (typeof value === 'string') {
    // mm_utils: "(AxB),...,(CxD)" expands to every (i, j) in range(A..C) × range(B..D), times the patch size.
    const m = [...value.matchAll(/\((\d+)x(\d+)\)/g)].map((x) => [Number(x[1]), Number(x[2])]);
    if (m.length < 2) throw new Error(`config.json: image_grid_pinpoints ${JSON.stringify(value)} is not of the form "(1x1),...,(6x6)"`);
    const [a, b] = m[0];
    const [c, d] = m[m.length - 1];
    // A corrupt range would expand to billions of candidates (or to none, which leaves anyres nothing to pick).
    if (a < 1 || b < 1 || a > c || b > d || (c - a + 1) * (d - b + 1) > MAX_GRID_PINPOINTS || Math.max(c, d) * patch > MAX_PINPOINT_SIDE) {
      throw new Error(`config.json: image_grid_pinpoints ${JSON.stringify(value)} must run from (1x1) or more to at most ${MAX_GRID_PINPOINTS} grids of at most ${MAX_PINPOINT_SIDE} px, first to last`);
    }
    const out: [number, number][] = [];
    for (let i = a; i <= c; i++) for (let j = b; j <= d; j++) out.push([i * patch, j * patch]);
    return out;
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_GRID_PINPOINTS) {
    throw new Error(`config.json: image_grid_pinpoints must be a list of 1 to ${MAX_GRID_PINPOINTS} [width, height] pairs`);
  }
  return value.map((p, i) => {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isSafeInteger(x) && x > 0 && x <= MAX_PINPOINT_SIDE)) {
      throw new Error(`config.json: image_grid_pinpoints[${i}] must be [width, height] in pixels up to ${MAX_PINPOINT_SIDE}, got ${JSON.stringify(p)}`);
    }
    if (p[0] % patch !== 0 || p[1] % patch !== 0) throw new Error(`config.json: image_grid_pinpoints[${i}] ${JSON.stringify(p)} is not a multiple of the ${patch}-px view`);
    return [p[0], p[1]] as [number, number];
  });
}

/** `anyres_max_N` (N ≥ 1) or `pad`; other LLaVA modes are not what this model was trained with. */
export function checkAspectRatio(value: string, where: string): string {
  if (value === 'pad' || /^anyres_max_[1-9]\d*$/.test(value)) return value;
  throw new Error(`${where}: image_aspect_ratio ${JSON.stringify(value)} is not supported; use "anyres_max_N" or "pad"`);
}

export interface SiglipConfigSources {
  config: Json;
  /** The tower's config.json (SiglipConfig with vision_config, or a SiglipVisionConfig). */
  towerConfig: Json;
  towerConfigSource: string;
  hasLmHead: boolean;
}

export function parseSiglipConfig(src: SiglipConfigSources): SiglipCheckpointConfig {
  const { config } = src;
  const log: ConfigLog = { defaulted: [], warnings: [] };
  const { text, t } = parseTextConfig(config, src.hasLmHead, log);
  const top = new FieldReader([{ label: 'config.json', obj: config }], log);

  const projector = top.string('mm_projector_type');
  if (projector !== 'mlp2x_gelu') throw new Error(`config.json: mm_projector_type ${JSON.stringify(projector)} is not supported; the SigLIP variant uses "mlp2x_gelu"`);
  const tower = top.string('mm_vision_tower');
  if (!tower || !tower.toLowerCase().includes('siglip')) throw new Error(`config.json: mm_vision_tower ${JSON.stringify(tower)} does not name a SigLIP tower`);
  const merge = top.string('mm_patch_merge_type') ?? 'flat';
  if (merge !== 'spatial_unpad') throw new Error(`config.json: mm_patch_merge_type ${JSON.stringify(merge)} is not supported; DiffusionVL-Qwen uses "spatial_unpad"`);
  // The official builder resizes the vocabulary when this key is missing (adds <im_patch>), which would drop the MASK row.
  if (top.bool('mm_use_im_patch_token') !== false) {
    throw new Error('config.json: mm_use_im_patch_token must be false (when it is missing or true the official loader resizes the vocabulary and loses the MASK id 151671)');
  }
  if (top.bool('mm_use_im_start_end') === true) throw new Error('config.json: mm_use_im_start_end=true is not supported (DiffusionVL-Qwen never uses image start/end tokens)');
  const aspectRatio = checkAspectRatio(top.string('image_aspect_ratio') ?? 'pad', 'config.json');
  const pinRaw = top.raw('image_grid_pinpoints')?.value;
  if (aspectRatio !== 'pad' && pinRaw === undefined) throw new Error('config.json: image_grid_pinpoints is missing (required for anyres_max)');
  const gridPinpoints = pinRaw === undefined ? [] : parseGridPinpoints(pinRaw, ANYRES_VIEW.imageSize);

  const tc = src.towerConfig;
  const hub = tc.model_type === 'siglip' || isObject(tc.vision_config) ? tc.vision_config : tc;
  if (!isObject(hub)) throw new Error(`${src.towerConfigSource}: no vision_config object`);
  const v = new FieldReader([{ label: src.towerConfigSource, obj: hub }], log);
  const hubLayers = v.dim('num_hidden_layers', SIGLIP_CLASS_DEFAULTS.num_hidden_layers);
  if (hubLayers < 2) throw new Error(`${src.towerConfigSource}: num_hidden_layers=${hubLayers}; the official loader deletes the last layer, so at least 2 are needed`);
  const hidden = v.dim('hidden_size', SIGLIP_CLASS_DEFAULTS.hidden_size);
  const heads = v.dim('num_attention_heads', SIGLIP_CLASS_DEFAULTS.num_attention_heads);
  if (hidden % heads !== 0) throw new Error(`${src.towerConfigSource}: num_attention_heads=${heads} does not divide hidden_size=${hidden}`);
  const act = v.string('hidden_act') ?? SIGLIP_CLASS_DEFAULTS.hidden_act;
  if (act !== 'gelu_pytorch_tanh') throw new Error(`${src.towerConfigSource}: hidden_act ${JSON.stringify(act)} is not supported (SigLIP uses gelu_pytorch_tanh)`);
  const imageSize = v.dim('image_size', SIGLIP_CLASS_DEFAULTS.image_size);
  const patchSize = v.dim('patch_size', SIGLIP_CLASS_DEFAULTS.patch_size);
  if (imageSize !== ANYRES_VIEW.imageSize || patchSize !== ANYRES_VIEW.patchSize) {
    throw new Error(`${src.towerConfigSource}: image_size ${imageSize} / patch_size ${patchSize}; the official grid assembly assumes 384 / 14`);
  }
  const channels = v.dim('num_channels', SIGLIP_CLASS_DEFAULTS.num_channels);
  if (channels !== 3) throw new Error(`${src.towerConfigSource}: num_channels=${channels}; images are RGB`);
  const mmHidden = top.dim('mm_hidden_size', hidden);
  if (mmHidden !== hidden) throw new Error(`config.json: mm_hidden_size=${mmHidden} but the SigLIP tower (${src.towerConfigSource}) has hidden_size=${hidden}`);
  const vision: SiglipVisionDims = {
    numLayers: hubLayers - 1,
    hiddenSize: hidden,
    numHeads: heads,
    headDim: hidden / heads,
    intermediateSize: v.dim('intermediate_size', SIGLIP_CLASS_DEFAULTS.intermediate_size),
    layerNormEps: v.positive('layer_norm_eps', SIGLIP_CLASS_DEFAULTS.layer_norm_eps),
    patchSize,
    imageSize,
    outHiddenSize: text.hiddenSize,
  };

  const enabled = top.bool('enable_bd3lm');
  if (enabled === false) log.warnings.push('enable_bd3lm is false in config.json; the official evaluation forces it on');
  const bd3lm = { enabled: enabled ?? true, blockSize: top.dim('bd3lm_block_size', 8) };
  const tokens = parseSpecialTokens(t, top, text.vocabSize);
  return {
    modelType: SIGLIP_MODEL_TYPE,
    text,
    vision,
    hubLayers,
    anyres: { aspectRatio, gridPinpoints, mergeType: 'spatial_unpad' },
    visionTower: tower,
    visionConfigSource: src.towerConfigSource,
    maxPromptRows: top.optionalInt('tokenizer_model_max_length'),
    bd3lm,
    tokens,
    defaulted: [...new Set(log.defaulted)],
    warnings: [...new Set(log.warnings)],
  };
}
