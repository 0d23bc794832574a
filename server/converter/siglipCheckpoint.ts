/**
 * Opens a DiffusionVL-Qwen (SigLIP) checkpoint folder the way the official loader sees it: config.json, then
 * model.safetensors or a sharded index holding `DiffusionVLQwenForCausalLM.state_dict()` names. The SigLIP tower's
 * own config comes from the folder `mm_vision_tower` names (or one given), else from the table of known hub towers.
 * If the checkpoint holds no tower weights, the tower folder's `vision_model.*` weights are used (what the official
 * loader keeps in that case), minus the last layer it deletes. Every shape is checked against the config up front.
 */
import { existsSync, statSync } from 'node:fs';
import { stat, readdir } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { mergeEntries, modelHeaders, readJson, type Entry } from './checkpoint';
import { detectArchitecture, type Json } from './checkpointConfig';
import { fmtShape, readSafetensorsHeader, tensorReader, type SafetensorsHeader, type TensorInfo } from './safetensors';
import { KNOWN_SIGLIP_TOWERS, parseSiglipConfig, type SiglipCheckpointConfig } from './siglipConfig';
import { checkLayerCounts, type ExpectedTensor } from './expectedTensors';

export interface SiglipCheckpoint {
  dir: string;
  config: SiglipCheckpointConfig;
  /** Canonical names: LLM names as released, `siglip.<name after vision_model.>`, `projector.{0,2}.*`, `model.image_newline`. */
  tensors: Map<string, TensorInfo>;
  files: { name: string; bytes: number; path: string }[];
  /** Where the tower weights came from. */
  towerWeights: 'checkpoint' | string;
  readF32(name: string, expectShape?: number[]): Promise<Float32Array>;
  close(): Promise<void>;
}

export const TOWER_PREFIX = 'model.vision_tower.vision_tower.vision_model.';
const HUB_TOWER_PREFIX = 'vision_model.';
const PROJECTOR_PREFIX = 'model.mm_projector.';

export interface SiglipOpenOptions {
  /** A SigLIP tower folder (config.json, optionally model.safetensors) or its config.json, overriding `mm_vision_tower`. */
  visionTower?: string;
}

/** Every tensor the SigLIP graphs need, sized from the config. */
export function expectedSiglipTensors(c: SiglipCheckpointConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const add = (name: string, dims: [number, string][]): void => {
    out.push({ name, shape: dims.map((d) => d[0]), axes: dims.map(([n, label]) => `${label}=${n}`) });
  };
  const t = c.text;
  const H: [number, string] = [t.hiddenSize, 'hidden_size'];
  const I: [number, string] = [t.intermediateSize, 'intermediate_size'];
  const V: [number, string] = [t.vocabSize, 'vocab_size'];
  const Q: [number, string] = [t.numHeads * t.headDim, 'num_attention_heads·head_dim'];
  const KV: [number, string] = [t.numKvHeads * t.headDim, 'num_key_value_heads·head_dim'];
  add('model.embed_tokens.weight', [V, H]);
  for (let i = 0; i < t.numLayers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, [H]);
    add(`${p}post_attention_layernorm.weight`, [H]);
    add(`${p}self_attn.q_proj.weight`, [Q, H]);
    add(`${p}self_attn.q_proj.bias`, [Q]);
    add(`${p}self_attn.k_proj.weight`, [KV, H]);
    add(`${p}self_attn.k_proj.bias`, [KV]);
    add(`${p}self_attn.v_proj.weight`, [KV, H]);
    add(`${p}self_attn.v_proj.bias`, [KV]);
    add(`${p}self_attn.o_proj.weight`, [H, Q]);
    add(`${p}mlp.gate_proj.weight`, [I, H]);
    add(`${p}mlp.up_proj.weight`, [I, H]);
    add(`${p}mlp.down_proj.weight`, [H, I]);
  }
  add('model.norm.weight', [H]);
  add('lm_head.weight', [V, H]);
  const v = c.vision;
  const C: [number, string] = [v.hiddenSize, 'vision hidden_size'];
  const VI: [number, string] = [v.intermediateSize, 'vision intermediate_size'];
  const P: [number, string] = [v.patchSize, 'patch_size'];
  const side = Math.floor(v.imageSize / v.patchSize);
  add('siglip.embeddings.patch_embedding.weight', [C, [3, 'num_channels'], P, P]);
  add('siglip.embeddings.patch_embedding.bias', [C]);
  add('siglip.embeddings.position_embedding.weight', [[side * side, '(image_size/patch_size)²'], C]);
  for (let i = 0; i < v.numLayers; i++) {
    const p = `siglip.encoder.layers.${i}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      add(`${p}self_attn.${proj}.weight`, [C, C]);
      add(`${p}self_attn.${proj}.bias`, [C]);
    }
    for (const ln of ['layer_norm1', 'layer_norm2']) {
      add(`${p}${ln}.weight`, [C]);
      add(`${p}${ln}.bias`, [C]);
    }
    add(`${p}mlp.fc1.weight`, [VI, C]);
    add(`${p}mlp.fc1.bias`, [VI]);
    add(`${p}mlp.fc2.weight`, [C, VI]);
    add(`${p}mlp.fc2.bias`, [C]);
  }
  add('projector.0.weight', [H, C]);
  add('projector.0.bias', [H]);
  add('projector.2.weight', [H, H]);
  add('projector.2.bias', [H]);
  add('model.image_newline', [H]);
  return out;
}

/** The tower's config.json: the given folder/file, else `mm_vision_tower` as a local folder, else a known hub id. */
async function towerConfig(dir: string, config: Json, given?: string): Promise<{ json: Json; source: string; folder?: string }> {
  const asFolder = (p: string): { file: string; folder: string } | undefined => {
    if (!existsSync(p)) return undefined;
    if (statSync(p).isDirectory()) return existsSync(join(p, 'config.json')) ? { file: join(p, 'config.json'), folder: p } : undefined;
    return { file: p, folder: resolve(p, '..') };
  };
  if (given) {
    const f = asFolder(resolve(given));
    if (!f) throw new Error(`--vision-tower ${given}: no such folder with a config.json (or config file)`);
    return { json: await readJson(f.file), source: f.file, folder: f.folder };
  }
  const tower = typeof config.mm_vision_tower === 'string' ? config.mm_vision_tower : '';
  for (const candidate of tower ? [isAbsolute(tower) ? tower : join(dir, tower)] : []) {
    const f = asFolder(candidate);
    if (f) return { json: await readJson(f.file), source: f.file, folder: f.folder };
  }
  const known = KNOWN_SIGLIP_TOWERS[tower];
  if (known) return { json: known, source: `${tower} (built-in config)` };
  throw new Error(
    `config.json: mm_vision_tower ${JSON.stringify(tower)} is neither a local folder nor a known SigLIP tower (${Object.keys(KNOWN_SIGLIP_TOWERS).join(', ')}); pass --vision-tower <folder with its config.json>`,
  );
}

export async function openSiglipCheckpoint(dirIn: string, opts: SiglipOpenOptions = {}): Promise<SiglipCheckpoint> {
  const dir = resolve(dirIn);
  let listing: string[];
  try {
    listing = await readdir(dir);
  } catch (err) {
    throw new Error(`${dir}: cannot list checkpoint folder (${(err as Error).message})`);
  }
  const names = new Set(listing);
  if (!names.has('config.json')) throw new Error(`${dir}: no config.json; not a checkpoint folder?`);
  const config = await readJson(join(dir, 'config.json'));
  if (detectArchitecture(config) !== 'diffusionvl_qwen') throw new Error('config.json: not a DiffusionVL-Qwen (SigLIP) checkpoint');

  const { headers, indexFiles } = await modelHeaders(dir, names);
  const used: SafetensorsHeader[] = [...headers];
  const modelEntries = mergeEntries(headers);
  const canonical = new Map<string, Entry>();
  for (const [k, e] of modelEntries) {
    if (k.startsWith(TOWER_PREFIX)) canonical.set(`siglip.${k.slice(TOWER_PREFIX.length)}`, e);
    else if (k.startsWith(PROJECTOR_PREFIX)) canonical.set(`projector.${k.slice(PROJECTOR_PREFIX.length)}`, e);
    else canonical.set(k, e);
  }
  const tower = await towerConfig(dir, config, opts.visionTower);
  let towerWeights = 'checkpoint';
  if (![...canonical.keys()].some((k) => k.startsWith('siglip.'))) {
    // No tower in the checkpoint: the official loader keeps the tower repo's own weights.
    const file = tower.folder ? join(tower.folder, 'model.safetensors') : '';
    if (!file || !existsSync(file)) {
      throw new Error(`${dir}: the checkpoint holds no vision tower weights (${TOWER_PREFIX}*) and no tower folder with model.safetensors was found; pass --vision-tower <folder>`);
    }
    const th = await readSafetensorsHeader(file);
    used.push(th);
    for (const [k, e] of mergeEntries([th])) if (k.startsWith(HUB_TOWER_PREFIX)) canonical.set(`siglip.${k.slice(HUB_TOWER_PREFIX.length)}`, e);
    towerWeights = file;
  }

  const parsed = parseSiglipConfig({ config, towerConfig: tower.json, towerConfigSource: tower.source, hasLmHead: canonical.has('lm_head.weight') });
  if (parsed.text.tieWordEmbeddings) {
    const emb = canonical.get('model.embed_tokens.weight');
    if (emb) canonical.set('lm_head.weight', emb);
  }
  const tensors = new Map<string, TensorInfo>();
  for (const [k, e] of canonical) if ('info' in e) tensors.set(k, e.info);
  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (t) return t;
    const e = canonical.get(name);
    if (e && 'unsupported' in e) throw new Error(`${basename(e.unsupported.file)}: tensor ${e.unsupported.name} has dtype ${e.unsupported.dtype}; only F32, F16 and BF16 are supported`);
    throw new Error(`tensor ${name} not found in ${used.map((h) => basename(h.file)).join(', ')}`);
  };

  checkLayerCounts([{ field: 'num_hidden_layers', count: parsed.text.numLayers, probe: (i) => `model.layers.${i}.input_layernorm.weight` }], (name) => canonical.has(name), 'config.json');
  // The tower config must agree with the weights: hub layers − 1 stored, and nothing beyond.
  const stored = new Set([...tensors.keys()].filter((k) => k.startsWith('siglip.encoder.layers.')).map((k) => Number(k.split('.')[3])));
  const storedLayers = towerWeights === 'checkpoint' ? stored.size : stored.size - 1;
  if (storedLayers !== parsed.vision.numLayers) {
    throw new Error(
      `${tower.source}: num_hidden_layers=${parsed.hubLayers} means ${parsed.vision.numLayers} layers run, but the ${towerWeights === 'checkpoint' ? 'checkpoint stores' : 'tower folder stores one more than'} ${storedLayers} encoder layers`,
    );
  }
  for (const exp of expectedSiglipTensors(parsed)) {
    const t = info(exp.name);
    const same = t.shape.length === exp.shape.length && t.shape.every((d, i) => d === exp.shape[i]);
    if (!same) {
      const axes = t.shape.length === exp.shape.length ? exp.axes.filter((_, i) => t.shape[i] !== exp.shape[i]) : exp.axes;
      throw new Error(`${basename(t.file)}: tensor ${t.name} has shape ${fmtShape(t.shape)}, config expects ${fmtShape(exp.shape)} (${axes.join(', ')})`);
    }
  }

  const jsonFiles = ['config.json', ...indexFiles].filter((n) => names.has(n)).map((n) => join(dir, n));
  const files = await Promise.all(
    [...jsonFiles, ...used.map((h) => h.file)].map(async (path) => ({ name: basename(path), bytes: (await stat(path)).size, path })),
  );
  const reader = tensorReader(info);
  return {
    dir,
    config: parsed,
    tensors,
    files,
    towerWeights,
    ...reader,
  };
}
