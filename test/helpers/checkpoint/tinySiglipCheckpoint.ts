/**
 * Deterministic DiffusionVL-Qwen (SigLIP) checkpoints for tests and benchmarks. With the defaults it regenerates the
 * reference tiny checkpoint's model.safetensors byte for byte (same recipe: one NumPy legacy RandomState per tensor,
 * seeded with sha256(`${seed}:${key}`), float64 scaling, one float32 rounding). Other sizes, BF16, shards and a
 * cheap fill serve the layout tests and the 7B-shaped memory benchmark.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LegacyRandomState } from './mt19937';
import { pyFloat, pyJsonDumps, type PyJson } from './pyJson';
import { dtypeBytes, numel, type SafetensorsDtype } from '../../../server/converter/safetensors';
import { writeSafetensors, type TensorSource } from './safetensorsWriter';

export interface SiglipTinyDims {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** SigLIP: hub layer count (one fewer is stored and run). */
  vHidden: number;
  vIntermediate: number;
  vHubLayers: number;
  vHeads: number;
}

/** The reference checkpoint's sizes (Qwen2.5-7B vocabulary, so the MASK id 151671 exists). */
export const SIGLIP_GOLDEN_DIMS: SiglipTinyDims = { vocab: 152064, hidden: 32, intermediate: 96, layers: 2, heads: 2, kvHeads: 1, vHidden: 32, vIntermediate: 64, vHubLayers: 3, vHeads: 2 };
/** The released DiffusionVL-Qwen2.5-7B sizes (Qwen2.5-7B + SigLIP so400m). */
export const SIGLIP_7B_DIMS: SiglipTinyDims = { vocab: 152064, hidden: 3584, intermediate: 18944, layers: 28, heads: 28, kvHeads: 4, vHidden: 1152, vIntermediate: 4304, vHubLayers: 27, vHeads: 16 };
export const SIGLIP_GOLDEN_SEED = 2104;
/** SHA-256 of the reference model.safetensors. */
export const SIGLIP_GOLDEN_SAFETENSORS_SHA256 = '04a40e3ba84c78f2b5fdea408567c5736b82e3e9feec332a7b3956e2b630f025';

/** The reference `<|im_end|>` lm_head row (designed so EOS wins at exactly one place in the golden run). */
const EOS_ROW = [
  0.4850276708602905, -1.990125060081482, -1.9059492349624634, 0.980355441570282, 1.6523162126541138, 1.02203369140625, -1.9966500997543335, 1.0197793245315552,
  -1.2710695266723633, 2.177339792251587, -1.4082534313201904, 1.5474787950515747, -1.3698234558105469, -1.5794845819473267, -3.434720039367676, 4.866152763366699,
  -2.3871302604675293, 0.3370305895805359, 1.6971927881240845, 1.109649896621704, 1.8566193580627441, -2.8507323265075684, -1.0801588296890259, 4.262362480163574,
  -2.8039846420288086, 2.64113450050354, -1.5033799409866333, 2.2834768295288086, 0.8590982556343079, -0.6868129968643188, 0.9014911651611328, -2.3475310802459717,
];
const EOS_ID = 151645;

export interface SiglipTinyOptions {
  dims?: SiglipTinyDims;
  dtype?: SafetensorsDtype;
  seed?: number;
  /** `gaussian`: the reference recipe. `cheap`: a fast deterministic pattern of similar scale (benchmarks). */
  fill?: 'gaussian' | 'cheap';
  /** 1: model.safetensors; N > 1: N shards + model.safetensors.index.json. */
  shards?: number;
  /** Write the tower's hub config into `<out>/siglip-tower/config.json` and point mm_vision_tower at it. */
  towerFolder?: boolean;
  /** Leave the tower weights out of the checkpoint and put them (all hub layers) into the tower folder. */
  towerOutside?: boolean;
}

type Init = { kind: 'normal'; std: number } | { kind: 'norm' };
interface Recipe {
  name: string;
  key: string;
  shape: number[];
  init: Init;
}

function recipe(d: SiglipTinyDims, towerPrefix: string, towerLayers: number, withText: boolean): Recipe[] {
  const out: Recipe[] = [];
  const normal = (name: string, key: string, shape: number[], std: number) => out.push({ name, key, shape, init: { kind: 'normal', std } });
  const norm = (name: string, key: string, n: number) => out.push({ name, key, shape: [n], init: { kind: 'norm' } });
  const H = d.hidden;
  const hd = H / d.heads;
  if (withText) {
    normal('model.embed_tokens.weight', 'model.embed_tokens.weight', [d.vocab, H], 1.0);
    for (let i = 0; i < d.layers; i++) {
      const p = `model.layers.${i}.`;
      normal(`${p}self_attn.q_proj.weight`, `${p}q.w`, [d.heads * hd, H], 3.0 / Math.sqrt(H));
      normal(`${p}self_attn.q_proj.bias`, `${p}q.b`, [d.heads * hd], 0.1);
      normal(`${p}self_attn.k_proj.weight`, `${p}k.w`, [d.kvHeads * hd, H], 3.0 / Math.sqrt(H));
      normal(`${p}self_attn.k_proj.bias`, `${p}k.b`, [d.kvHeads * hd], 0.1);
      normal(`${p}self_attn.v_proj.weight`, `${p}v.w`, [d.kvHeads * hd, H], 1.0 / Math.sqrt(H));
      normal(`${p}self_attn.v_proj.bias`, `${p}v.b`, [d.kvHeads * hd], 0.1);
      normal(`${p}self_attn.o_proj.weight`, `${p}o.w`, [H, d.heads * hd], 1.0 / Math.sqrt(d.heads * hd));
      normal(`${p}mlp.gate_proj.weight`, `${p}gate.w`, [d.intermediate, H], 1.0 / Math.sqrt(H));
      normal(`${p}mlp.up_proj.weight`, `${p}up.w`, [d.intermediate, H], 1.0 / Math.sqrt(H));
      normal(`${p}mlp.down_proj.weight`, `${p}down.w`, [H, d.intermediate], 1.0 / Math.sqrt(d.intermediate));
      norm(`${p}input_layernorm.weight`, `${p}ln1`, H);
      norm(`${p}post_attention_layernorm.weight`, `${p}ln2`, H);
    }
    norm('model.norm.weight', 'model.norm.weight', H);
  }
  const D = d.vHidden;
  const VI = d.vIntermediate;
  const P = 14;
  const p = `${towerPrefix}vision_model.`;
  normal(`${p}embeddings.patch_embedding.weight`, 'v.patch.w', [D, 3, P, P], 1.0 / Math.sqrt(3 * P * P));
  normal(`${p}embeddings.patch_embedding.bias`, 'v.patch.b', [D], 0.1);
  normal(`${p}embeddings.position_embedding.weight`, 'v.pos', [729, D], 0.5);
  for (let i = 0; i < towerLayers; i++) {
    const q = `${p}encoder.layers.${i}.`;
    normal(`${q}self_attn.k_proj.weight`, `${q}k.w`, [D, D], 1.5 / Math.sqrt(D));
    normal(`${q}self_attn.k_proj.bias`, `${q}k.b`, [D], 0.1);
    normal(`${q}self_attn.v_proj.weight`, `${q}v.w`, [D, D], 1.0 / Math.sqrt(D));
    normal(`${q}self_attn.v_proj.bias`, `${q}v.b`, [D], 0.1);
    normal(`${q}self_attn.q_proj.weight`, `${q}q.w`, [D, D], 1.5 / Math.sqrt(D));
    normal(`${q}self_attn.q_proj.bias`, `${q}q.b`, [D], 0.1);
    normal(`${q}self_attn.out_proj.weight`, `${q}o.w`, [D, D], 1.0 / Math.sqrt(D));
    normal(`${q}self_attn.out_proj.bias`, `${q}o.b`, [D], 0.1);
    norm(`${q}layer_norm1.weight`, `${q}ln1.w`, D);
    normal(`${q}layer_norm1.bias`, `${q}ln1.b`, [D], 0.1);
    normal(`${q}mlp.fc1.weight`, `${q}fc1.w`, [VI, D], 1.0 / Math.sqrt(D));
    normal(`${q}mlp.fc1.bias`, `${q}fc1.b`, [VI], 0.1);
    normal(`${q}mlp.fc2.weight`, `${q}fc2.w`, [D, VI], 1.0 / Math.sqrt(VI));
    normal(`${q}mlp.fc2.bias`, `${q}fc2.b`, [D], 0.1);
    norm(`${q}layer_norm2.weight`, `${q}ln2.w`, D);
    normal(`${q}layer_norm2.bias`, `${q}ln2.b`, [D], 0.1);
  }
  norm(`${p}post_layernorm.weight`, 'v.post.w', D);
  normal(`${p}post_layernorm.bias`, 'v.post.b', [D], 0.1);
  if (withText) {
    normal('model.mm_projector.0.weight', 'proj.0.w', [H, D], 1.0 / Math.sqrt(D));
    normal('model.mm_projector.0.bias', 'proj.0.b', [H], 0.1);
    normal('model.mm_projector.2.weight', 'proj.2.w', [H, H], 1.0 / Math.sqrt(H));
    normal('model.mm_projector.2.bias', 'proj.2.b', [H], 0.1);
    normal('model.image_newline', 'image_newline', [H], 1.0);
    normal('lm_head.weight', 'lm_head.weight', [d.vocab, H], 8.0 / Math.sqrt(H));
  }
  return out;
}

function tensorSeed(seed: number, key: string): number {
  return createHash('sha256').update(`${seed}:${key}`).digest().readUInt32LE(0);
}

function filler(r: Recipe, seed: number, fill: 'gaussian' | 'cheap', eosRow: boolean): (chunk: Float32Array, start: number) => void {
  const s = tensorSeed(seed, r.key);
  const cols = r.shape.length > 1 ? numel(r.shape.slice(1)) : 1;
  const override = eosRow && r.name === 'lm_head.weight' && cols === EOS_ROW.length ? { from: EOS_ID * cols, to: (EOS_ID + 1) * cols } : undefined;
  const put = (chunk: Float32Array, start: number) => {
    if (!override) return;
    for (let i = Math.max(start, override.from); i < Math.min(start + chunk.length, override.to); i++) chunk[i - start] = EOS_ROW[i - override.from];
  };
  if (fill === 'cheap') {
    const scale = r.init.kind === 'norm' ? 0.1 : r.init.std;
    const base = r.init.kind === 'norm' ? 1 : 0;
    return (chunk, start) => {
      for (let i = 0; i < chunk.length; i++) chunk[i] = base + 3.4641016151377544 * ((Math.imul((start + i) ^ s, 2654435761) >>> 0) / 4294967296 - 0.5) * scale;
    };
  }
  const rs = new LegacyRandomState(s);
  return (chunk, start) => {
    if (r.init.kind === 'norm') for (let i = 0; i < chunk.length; i++) chunk[i] = 1.0 + 0.1 * rs.gauss();
    else {
      const std = r.init.std;
      for (let i = 0; i < chunk.length; i++) chunk[i] = rs.gauss() * std;
    }
    put(chunk, start);
  };
}

function configDict(d: SiglipTinyDims, dtype: SafetensorsDtype, tower: string): { [k: string]: PyJson } {
  const pinpoints: PyJson[] = [];
  for (let i = 1; i <= 6; i++) for (let j = 1; j <= 6; j++) pinpoints.push([384 * i, 384 * j]);
  return {
    architectures: ['DiffusionVLQwenForCausalLM'],
    model_type: 'diffusionvl_qwen',
    vocab_size: d.vocab,
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
    max_window_layers: d.layers,
    initializer_range: pyFloat(0.02),
    rms_norm_eps: pyFloat(1e-6),
    rope_theta: pyFloat(1000000.0),
    rope_scaling: null,
    sliding_window: null,
    use_sliding_window: false,
    attention_dropout: pyFloat(0.0),
    tie_word_embeddings: false,
    use_cache: true,
    bos_token_id: 151643,
    eos_token_id: 151645,
    torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float32',
    mm_vision_tower: tower,
    vision_tower_pretrained: '',
    mm_projector_type: 'mlp2x_gelu',
    mm_hidden_size: d.vHidden,
    mm_vision_select_layer: -2,
    mm_vision_select_feature: 'patch',
    mm_patch_merge_type: 'spatial_unpad',
    mm_newline_position: 'grid',
    mm_resampler_type: null,
    mm_tunable_parts: 'mm_vision_tower,mm_mlp_adapter,mm_language_model',
    mm_use_im_start_end: false,
    mm_use_im_patch_token: false,
    mm_projector_lr: null,
    mm_vision_tower_lr: pyFloat(2e-6),
    mm_spatial_pool_stride: null,
    use_mm_proj: true,
    image_aspect_ratio: 'anyres_max_4',
    image_grid_pinpoints: pinpoints,
    image_crop_resolution: null,
    image_split_resolution: null,
    tokenizer_model_max_length: 8192,
    tokenizer_padding_side: 'right',
    add_faster_video: false,
    faster_token_stride: 10,
    force_sample: false,
    add_time_instruction: false,
    enable_bd3lm: true,
    bd3lm_block_size: 8,
  };
}

/** The tower's hub config (SiglipConfig with vision_config), as the official SigLipVisionConfig reads it. */
export function siglipTowerConfig(d: SiglipTinyDims): { [k: string]: PyJson } {
  return {
    architectures: ['SiglipModel'],
    model_type: 'siglip',
    vision_config: {
      model_type: 'siglip_vision_model',
      hidden_size: d.vHidden,
      intermediate_size: d.vIntermediate,
      num_hidden_layers: d.vHubLayers,
      num_attention_heads: d.vHeads,
      num_channels: 3,
      image_size: 384,
      patch_size: 14,
      hidden_act: 'gelu_pytorch_tanh',
      layer_norm_eps: pyFloat(1e-6),
      attention_dropout: pyFloat(0.0),
    },
  };
}

/** Writes a checkpoint folder; the reference one (defaults + towerFolder) converts to the golden model. */
export async function writeSiglipCheckpoint(outDir: string, opts: SiglipTinyOptions = {}): Promise<void> {
  const d = opts.dims ?? SIGLIP_GOLDEN_DIMS;
  const dtype = opts.dtype ?? 'F32';
  const seed = opts.seed ?? SIGLIP_GOLDEN_SEED;
  const fill = opts.fill ?? 'gaussian';
  await mkdir(outDir, { recursive: true });
  const towerDir = join(outDir, 'siglip-tower');
  const tower = opts.towerFolder || opts.towerOutside ? 'siglip-tower' : 'google/siglip2-so400m-patch14-384';
  await writeFile(join(outDir, 'config.json'), pyJsonDumps(configDict(d, dtype, tower), 2) + '\n');
  const golden = d === SIGLIP_GOLDEN_DIMS && seed === SIGLIP_GOLDEN_SEED && fill === 'gaussian';
  const sources = (rs: Recipe[]): TensorSource[] => rs.map((r) => ({ name: r.name, dtype, shape: r.shape, open: () => filler(r, seed, fill, golden) }));
  const all = recipe(d, 'model.vision_tower.vision_tower.', d.vHubLayers - 1, true).filter((r) => !(opts.towerOutside && r.name.startsWith('model.vision_tower.')));
  const model = sources(all);
  const shards = opts.shards ?? 1;
  if (shards <= 1) await writeSafetensors(join(outDir, 'model.safetensors'), model);
  else {
    const per = Math.ceil(model.length / shards);
    const weightMap: { [k: string]: PyJson } = {};
    let total = 0;
    for (let i = 0; i < shards; i++) {
      const part = model.slice(i * per, (i + 1) * per);
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      await writeSafetensors(join(outDir, file), part);
      for (const t of part) {
        weightMap[t.name] = file;
        total += numel(t.shape) * dtypeBytes(t.dtype);
      }
    }
    await writeFile(join(outDir, 'model.safetensors.index.json'), pyJsonDumps({ metadata: { total_size: total }, weight_map: weightMap }, 2) + '\n');
  }
  if (opts.towerFolder || opts.towerOutside) {
    await mkdir(towerDir, { recursive: true });
    await writeFile(join(towerDir, 'config.json'), pyJsonDumps(siglipTowerConfig(d), 2) + '\n');
    // Hub weights: every hub layer, another seed (the checkpoint's own tower overwrites them when it has one).
    if (opts.towerOutside) await writeSafetensors(join(towerDir, 'model.safetensors'), sources(recipe(d, '', d.vHubLayers, false)));
  }
}
