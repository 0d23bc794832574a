/**
 * Deterministic tiny DiffusionVL-QwenVL checkpoints for tests and benchmarks.
 *
 * `writeGoldenTinyCheckpoint` regenerates the reference tiny checkpoint byte for byte from its recipe: every tensor
 * is drawn from its own NumPy legacy RandomState seeded with sha256(`${seed}:${key}`), scaled in float64 and then
 * rounded to float32. `writeTinyCheckpoint` uses the same recipe for other sizes, dtypes and file layouts.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VisionDims } from '../../../server/engine/manifest';
import type { QwenVLTextConfig } from '../../../server/converter/checkpointConfig';
import { LegacyRandomState } from './mt19937';
import { pyFloat, pyJsonDumps, type PyJson } from './pyJson';
import { dtypeBytes, numel, type SafetensorsDtype } from '../../../server/converter/safetensors';
import { writeSafetensors, type TensorSource } from './safetensorsWriter';
import { sha256File } from '../../../server/converter/fileHash';

/** The text sizes a tiny checkpoint is generated with (the rest of the config follows from them). */
export type TinyTextDims = Pick<
  QwenVLTextConfig,
  'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'rmsNormEps' | 'ropeTheta'
>;

/** The vision tower's head dim follows from its sizes; out_hidden_size always equals the text hidden size. */
export type TinyVisionDims = Omit<VisionDims, 'headDim' | 'outHiddenSize'>;

export interface TinyCheckpointOptions {
  text?: Partial<TinyTextDims>;
  vision?: Partial<TinyVisionDims>;
  /** Tied: no `lm_head.weight` stored and `tie_word_embeddings: true`. Default false (as the reference). */
  tied?: boolean;
  /** `separate`: vision_tower.safetensors (reference). `inside`: model files under `model.vision_tower.vision_tower.`. */
  visionLayout?: 'separate' | 'inside';
  /** Key prefix inside a separate vision_tower.safetensors (the loader strips it). Default none. */
  visionFilePrefix?: '' | 'visual.' | 'vision_tower.' | 'model.vision_tower.vision_tower.';
  /** `separate`: projector.safetensors (reference). `inside`: model files under `model.mm_projector.merger.`. */
  projectorLayout?: 'separate' | 'inside';
  /** Keep the `merger.` prefix on keys in a separate projector.safetensors. Default false. */
  projectorMergerPrefix?: boolean;
  /** 1: model.safetensors. N > 1: N shards plus model.safetensors.index.json. */
  shards?: number;
  dtype?: SafetensorsDtype;
  seed?: number;
  /** `gaussian`: the reference recipe. `cheap`: a fast deterministic pattern of similar scale (benchmarks). */
  fill?: 'gaussian' | 'cheap';
  /** `release`: text_config plus top-level copies (reference). `flat`: text fields only at the top level. */
  configStyle?: 'release' | 'flat';
  /** Write vision_config.json next to config.json (default true); config.json always nests vision_config. */
  visionConfigFile?: boolean;
  /** Write SHA256SUMS of the other files, as the reference folder has. */
  sha256sums?: boolean;
}

export const GOLDEN_SEED = 15;
export const GOLDEN_TEXT: TinyTextDims = {
  vocabSize: 151936,
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  rmsNormEps: 1e-6,
  ropeTheta: 1000000.0,
};
export const GOLDEN_VISION: TinyVisionDims = {
  depth: 4,
  hiddenSize: 32,
  numHeads: 2,
  intermediateSize: 64,
  patchSize: 14,
  temporalPatchSize: 2,
  spatialMergeSize: 2,
  windowSize: 112,
  fullAttentionBlocks: [1, 3],
  inChannels: 3,
};

// Init scales of the reference recipe (chosen there so every arg-max in the goldens is decisive).
const EMBED_STD = 1.0;
const LM_HEAD_GAIN = 12.0;
const QK_GAIN = 1.5;
const BIAS_STD = 0.1;
const NORM_JITTER = 0.1;
const BD3LM_BLOCK_SIZE = 8;
const MIN_PIXELS = 384 * 384;
const MAX_PIXELS = 512 * 512;

type Init =
  | { kind: 'normal'; std: number; /** rows [0, rows) are multiplied by gain after the float32 cast */ gainRows?: { rows: number; gain: number } }
  | { kind: 'norm' };

/** One tensor of the recipe: canonical name, the key its seed derives from, shape and init. */
export interface TinyTensor {
  name: string;
  seedKey: string;
  shape: number[];
  init: Init;
}

function resolved(opts: TinyCheckpointOptions): { text: TinyTextDims; vision: TinyVisionDims } {
  return { text: { ...GOLDEN_TEXT, ...opts.text }, vision: { ...GOLDEN_VISION, ...opts.vision } };
}

/** The recipe's tensors with canonical names (`vision.*`, `projector.*` for the tower and merger). */
export function tinyTensors(opts: TinyCheckpointOptions = {}): TinyTensor[] {
  const { text: t, vision: v } = resolved(opts);
  const out: TinyTensor[] = [];
  const normal = (name: string, seedKey: string, shape: number[], std: number): void => {
    out.push({ name, seedKey, shape, init: { kind: 'normal', std } });
  };
  const norm = (name: string, seedKey: string, n: number): void => {
    out.push({ name, seedKey, shape: [n], init: { kind: 'norm' } });
  };
  const H = t.hiddenSize;
  const I = t.intermediateSize;
  const hd = H / t.numHeads;
  normal('model.embed_tokens.weight', 'model.embed_tokens.weight', [t.vocabSize, H], EMBED_STD);
  for (let i = 0; i < t.numLayers; i++) {
    const p = `model.layers.${i}.`;
    normal(`${p}self_attn.q_proj.weight`, `${p}q.w`, [t.numHeads * hd, H], QK_GAIN / Math.sqrt(H));
    normal(`${p}self_attn.q_proj.bias`, `${p}q.b`, [t.numHeads * hd], BIAS_STD);
    normal(`${p}self_attn.k_proj.weight`, `${p}k.w`, [t.numKvHeads * hd, H], QK_GAIN / Math.sqrt(H));
    normal(`${p}self_attn.k_proj.bias`, `${p}k.b`, [t.numKvHeads * hd], BIAS_STD);
    normal(`${p}self_attn.v_proj.weight`, `${p}v.w`, [t.numKvHeads * hd, H], 1.0 / Math.sqrt(H));
    normal(`${p}self_attn.v_proj.bias`, `${p}v.b`, [t.numKvHeads * hd], BIAS_STD);
    normal(`${p}self_attn.o_proj.weight`, `${p}o.w`, [H, t.numHeads * hd], 1.0 / Math.sqrt(t.numHeads * hd));
    normal(`${p}mlp.gate_proj.weight`, `${p}gate.w`, [I, H], 1.0 / Math.sqrt(H));
    normal(`${p}mlp.up_proj.weight`, `${p}up.w`, [I, H], 1.0 / Math.sqrt(H));
    normal(`${p}mlp.down_proj.weight`, `${p}down.w`, [H, I], 1.0 / Math.sqrt(I));
    norm(`${p}input_layernorm.weight`, `${p}ln1`, H);
    norm(`${p}post_attention_layernorm.weight`, `${p}ln2`, H);
  }
  norm('model.norm.weight', 'model.norm.weight', H);
  if (!opts.tied) normal('lm_head.weight', 'lm_head.weight', [t.vocabSize, H], LM_HEAD_GAIN / Math.sqrt(H));

  const C = v.hiddenSize;
  const VI = v.intermediateSize;
  const fan = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  normal('vision.patch_embed.proj.weight', 'v.patch', [C, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize], 1.0 / Math.sqrt(fan));
  for (let i = 0; i < v.depth; i++) {
    const p = `blocks.${i}.`;
    const n = `vision.${p}`;
    norm(`${n}norm1.weight`, `${p}n1`, C);
    norm(`${n}norm2.weight`, `${p}n2`, C);
    out.push({ name: `${n}attn.qkv.weight`, seedKey: `${p}qkv.w`, shape: [3 * C, C], init: { kind: 'normal', std: 1.0 / Math.sqrt(C), gainRows: { rows: 2 * C, gain: QK_GAIN } } });
    normal(`${n}attn.qkv.bias`, `${p}qkv.b`, [3 * C], BIAS_STD);
    normal(`${n}attn.proj.weight`, `${p}proj.w`, [C, C], 1.0 / Math.sqrt(C));
    normal(`${n}attn.proj.bias`, `${p}proj.b`, [C], BIAS_STD);
    normal(`${n}mlp.gate_proj.weight`, `${p}gate.w`, [VI, C], 1.0 / Math.sqrt(C));
    normal(`${n}mlp.gate_proj.bias`, `${p}gate.b`, [VI], BIAS_STD);
    normal(`${n}mlp.up_proj.weight`, `${p}up.w`, [VI, C], 1.0 / Math.sqrt(C));
    normal(`${n}mlp.up_proj.bias`, `${p}up.b`, [VI], BIAS_STD);
    normal(`${n}mlp.down_proj.weight`, `${p}down.w`, [C, VI], 1.0 / Math.sqrt(VI));
    normal(`${n}mlp.down_proj.bias`, `${p}down.b`, [C], BIAS_STD);
  }
  const M = C * v.spatialMergeSize ** 2;
  const O = H;
  norm('projector.ln_q.weight', 'm.lnq', C);
  normal('projector.mlp.0.weight', 'm.fc1.w', [M, M], 1.0 / Math.sqrt(M));
  normal('projector.mlp.0.bias', 'm.fc1.b', [M], BIAS_STD);
  normal('projector.mlp.2.weight', 'm.fc2.w', [O, M], 2.0 / Math.sqrt(M));
  normal('projector.mlp.2.bias', 'm.fc2.b', [O], BIAS_STD);
  return out;
}

/** RandomState seed of one tensor: the first 4 bytes (little-endian) of sha256(`${seed}:${key}`). */
export function tensorSeed(seed: number, key: string): number {
  return createHash('sha256').update(`${seed}:${key}`).digest().readUInt32LE(0);
}

/** A stateful chunk filler for one tensor, producing the float32 values of the recipe in C order. */
function filler(t: TinyTensor, seed: number, fill: 'gaussian' | 'cheap'): (chunk: Float32Array, start: number) => void {
  const s = tensorSeed(seed, t.seedKey);
  const init = t.init;
  const cols = t.shape.length > 1 ? numel(t.shape.slice(1)) : 1;
  const gainEnd = init.kind === 'normal' && init.gainRows ? init.gainRows.rows * cols : 0;
  const gain = init.kind === 'normal' && init.gainRows ? init.gainRows.gain : 1;
  if (fill === 'cheap') {
    // Uniform on (-√3, √3)·std: unit variance like the gaussians, at a fraction of the cost.
    const scale = init.kind === 'norm' ? NORM_JITTER : init.std;
    const base = init.kind === 'norm' ? 1 : 0;
    return (chunk, start) => {
      for (let i = 0; i < chunk.length; i++) {
        const u = (Math.imul((start + i) ^ s, 2654435761) >>> 0) / 4294967296 - 0.5;
        chunk[i] = base + 3.4641016151377544 * u * scale;
      }
    };
  }
  const rs = new LegacyRandomState(s);
  return (chunk, start) => {
    if (init.kind === 'norm') {
      for (let i = 0; i < chunk.length; i++) chunk[i] = 1.0 + NORM_JITTER * rs.gauss(); // float64, then one float32 rounding
      return;
    }
    const std = init.std;
    for (let i = 0; i < chunk.length; i++) chunk[i] = rs.gauss() * std; // float64 product, rounded to float32 on store
    // The gain is applied to the float32 array (a float32 multiply), so round twice, as the recipe does.
    for (let i = start; i < Math.min(gainEnd, start + chunk.length); i++) chunk[i - start] = Math.fround(chunk[i - start] * gain);
  };
}

/** The float32 values of one recipe tensor (before any F16/BF16 narrowing), for tests. */
export function tinyTensorValues(opts: TinyCheckpointOptions, name: string): Float32Array {
  const t = tinyTensors(opts).find((x) => x.name === name);
  if (!t) throw new Error(`tiny checkpoint has no tensor ${name}`);
  const out = new Float32Array(numel(t.shape));
  filler(t, opts.seed ?? GOLDEN_SEED, opts.fill ?? 'gaussian')(out, 0);
  return out;
}

/** Name of a canonical tensor as stored under the chosen layout. */
export function storedName(opts: TinyCheckpointOptions, name: string): string {
  if (name.startsWith('vision.')) {
    const bare = name.slice('vision.'.length);
    return opts.visionLayout === 'inside' ? `model.vision_tower.vision_tower.${bare}` : `${opts.visionFilePrefix ?? ''}${bare}`;
  }
  if (name.startsWith('projector.')) {
    const bare = name.slice('projector.'.length);
    if (opts.projectorLayout === 'inside') return `model.mm_projector.merger.${bare}`;
    return opts.projectorMergerPrefix ? `merger.${bare}` : bare;
  }
  return name;
}

const TORCH_DTYPE: Record<SafetensorsDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

function textConfigDict(t: TinyTextDims, tied: boolean, torchDtype: string): { [k: string]: PyJson } {
  const hd = t.hiddenSize / t.numHeads;
  const half = Math.floor(hd / 2); // mrope_section sums to head_dim/2
  const q = Math.floor(half / 4);
  const mid = Math.floor((half - q) / 2);
  return {
    model_type: 'qwen2_5_vl_text',
    vocab_size: t.vocabSize,
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numLayers,
    num_attention_heads: t.numHeads,
    num_key_value_heads: t.numKvHeads,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
    initializer_range: pyFloat(0.02),
    rms_norm_eps: pyFloat(t.rmsNormEps),
    use_cache: true,
    tie_word_embeddings: tied,
    rope_theta: pyFloat(t.ropeTheta),
    use_sliding_window: false,
    sliding_window: 32768,
    max_window_layers: t.numLayers,
    attention_dropout: pyFloat(0.0),
    rope_scaling: { type: 'mrope', mrope_section: [q, mid, half - q - mid] },
    bos_token_id: 151643,
    eos_token_id: 151645,
    torch_dtype: torchDtype,
  };
}

function visionConfigDict(v: TinyVisionDims, outHidden: number, torchDtype: string): { [k: string]: PyJson } {
  return {
    model_type: 'qwen2_5_vl',
    depth: v.depth,
    hidden_size: v.hiddenSize,
    hidden_act: 'silu',
    intermediate_size: v.intermediateSize,
    num_heads: v.numHeads,
    in_channels: v.inChannels,
    patch_size: v.patchSize,
    spatial_merge_size: v.spatialMergeSize,
    temporal_patch_size: v.temporalPatchSize,
    tokens_per_second: 2,
    window_size: v.windowSize,
    out_hidden_size: outHidden,
    fullatt_block_indexes: [...v.fullAttentionBlocks],
    initializer_range: pyFloat(0.02),
    torch_dtype: torchDtype,
  };
}

function topConfigDict(opts: TinyCheckpointOptions): { [k: string]: PyJson } {
  const { text, vision } = resolved(opts);
  const tied = opts.tied ?? false;
  const torchDtype = TORCH_DTYPE[opts.dtype ?? 'F32'];
  const tc = textConfigDict(text, tied, torchDtype);
  const cfg: { [k: string]: PyJson } = {
    architectures: ['DiffusionVLQwenVLForCausalLM'],
    model_type: 'diffusionvl_qwenvl',
    text_config: tc,
    vision_config: visionConfigDict(vision, text.hiddenSize, torchDtype),
    image_token_id: 151655,
    video_token_id: 151656,
    vision_start_token_id: 151652,
    vision_end_token_id: 151653,
    bos_token_id: 151643,
    eos_token_id: 151645,
    enable_bd3lm: true,
    bd3lm_block_size: BD3LM_BLOCK_SIZE,
    tie_word_embeddings: tied,
    torch_dtype: torchDtype,
    mm_vision_tower: 'tiny-diffusionvl-qwenvl',
    mm_projector_type: 'qwen_merger',
    mm_hidden_size: vision.hiddenSize,
    mm_vision_select_layer: -1,
    mm_vision_select_feature: 'patch',
    mm_patch_merge_type: 'flat',
    mm_use_im_start_end: false,
    mm_use_im_patch_token: false,
    min_pixels: MIN_PIXELS,
    max_pixels: MAX_PIXELS,
    tokenizer_padding_side: 'right',
    use_cache: true,
  };
  // A vocabulary smaller than Qwen's has no row 151671 for MASK: give such models their own special ids, as a
  // model with its own tokenizer does.
  if (text.vocabSize <= 151671) {
    const V = text.vocabSize;
    for (const c of [cfg, tc]) {
      c.eos_token_id = V - 2;
      c.bos_token_id = V - 3;
      c.pad_token_id = V - 3;
    }
    cfg.mask_token_id = V - 1;
  }
  // The release config copies every text_config field to the top level.
  for (const [k, v] of Object.entries(tc)) if (k !== 'model_type' && !(k in cfg)) cfg[k] = v;
  if (opts.configStyle === 'flat') delete cfg.text_config;
  return cfg;
}

const PREPROCESSOR: { [k: string]: PyJson } = {
  min_pixels: 3136,
  max_pixels: 12845056,
  patch_size: 14,
  temporal_patch_size: 2,
  merge_size: 2,
  image_mean: [pyFloat(0.48145466), pyFloat(0.4578275), pyFloat(0.40821073)],
  image_std: [pyFloat(0.26862954), pyFloat(0.26130258), pyFloat(0.27577711)],
  image_processor_type: 'Qwen2VLImageProcessor',
  processor_class: 'Qwen2_5_VLProcessor',
};

/** `json.dump(obj, f, indent=2, sort_keys=True)` followed by a newline. */
async function writePyJson(path: string, obj: PyJson): Promise<void> {
  await writeFile(path, pyJsonDumps(obj, 2) + '\n');
}

/** Splits sorted tensors into `n` consecutive groups of roughly equal bytes (what sharded saves look like). */
function shardGroups(tensors: TensorSource[], n: number): TensorSource[][] {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const bytes = (t: TensorSource): number => numel(t.shape) * dtypeBytes(t.dtype);
  const total = sorted.reduce((s, t) => s + bytes(t), 0);
  const groups: TensorSource[][] = Array.from({ length: n }, () => []);
  let acc = 0;
  let g = 0;
  sorted.forEach((t, i) => {
    // Move on once this shard has its share, or when every later shard needs one of the remaining tensors.
    if (groups[g].length > 0 && g < n - 1 && (acc >= ((g + 1) * total) / n || sorted.length - i === n - 1 - g)) g++;
    groups[g].push(t);
    acc += bytes(t);
  });
  return groups.filter((x) => x.length > 0);
}

/** Writes a tiny checkpoint in the release layout (or a variant); returns the file names written. */
export async function writeTinyCheckpoint(outDir: string, opts: TinyCheckpointOptions = {}): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const dtype = opts.dtype ?? 'F32';
  const seed = opts.seed ?? GOLDEN_SEED;
  const fill = opts.fill ?? 'gaussian';
  const { text, vision } = resolved(opts);
  const written: string[] = [];
  await writePyJson(join(outDir, 'config.json'), topConfigDict(opts));
  written.push('config.json');
  if (opts.visionConfigFile ?? true) {
    await writePyJson(join(outDir, 'vision_config.json'), visionConfigDict(vision, text.hiddenSize, TORCH_DTYPE[dtype]));
    written.push('vision_config.json');
  }
  await writePyJson(join(outDir, 'preprocessor_config.json'), PREPROCESSOR);
  written.push('preprocessor_config.json');

  const model: TensorSource[] = [];
  const visionFile: TensorSource[] = [];
  const projectorFile: TensorSource[] = [];
  for (const t of tinyTensors(opts)) {
    const src: TensorSource = { name: storedName(opts, t.name), dtype, shape: t.shape, open: () => filler(t, seed, fill) };
    if (t.name.startsWith('vision.') && opts.visionLayout !== 'inside') visionFile.push(src);
    else if (t.name.startsWith('projector.') && opts.projectorLayout !== 'inside') projectorFile.push(src);
    else model.push(src);
  }
  const shards = opts.shards ?? 1;
  if (shards <= 1) {
    await writeSafetensors(join(outDir, 'model.safetensors'), model);
    written.push('model.safetensors');
  } else {
    const groups = shardGroups(model, shards);
    const weightMap: { [k: string]: PyJson } = {};
    let totalSize = 0;
    for (let i = 0; i < groups.length; i++) {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`;
      await writeSafetensors(join(outDir, file), groups[i]);
      written.push(file);
      for (const t of groups[i]) {
        weightMap[t.name] = file;
        totalSize += numel(t.shape) * dtypeBytes(t.dtype);
      }
    }
    await writePyJson(join(outDir, 'model.safetensors.index.json'), { metadata: { total_size: totalSize }, weight_map: weightMap });
    written.push('model.safetensors.index.json');
  }
  if (visionFile.length) {
    await writeSafetensors(join(outDir, 'vision_tower.safetensors'), visionFile);
    written.push('vision_tower.safetensors');
  }
  if (projectorFile.length) {
    await writeSafetensors(join(outDir, 'projector.safetensors'), projectorFile);
    written.push('projector.safetensors');
  }
  if (opts.sha256sums) {
    const names = (await readdir(outDir)).filter((n) => n !== 'SHA256SUMS').sort();
    let sums = '';
    for (const n of names) if ((await stat(join(outDir, n))).isFile()) sums += `${await sha256File(join(outDir, n))}  ${n}\n`;
    await writeFile(join(outDir, 'SHA256SUMS'), sums);
    written.push('SHA256SUMS');
  }
  return written;
}

/** The reference tiny checkpoint (fp32, untied, release layout, seed 15), byte-identical, with its SHA256SUMS. */
export function writeGoldenTinyCheckpoint(outDir: string): Promise<string[]> {
  return writeTinyCheckpoint(outDir, { sha256sums: true });
}
