import type { QwenVLCheckpointConfig } from './checkpointConfig';

/** A tensor the QwenVL graphs need, with its shape derived from config and the config field behind each axis. */
export interface ExpectedTensor {
  /** Canonical name (LLM names as released, `vision.*`, `projector.*`). */
  name: string;
  shape: number[];
  /** Per axis, the config expression that sizes it, e.g. `intermediate_size=96`. */
  axes: string[];
}

/** Every tensor a DiffusionVL-QwenVL checkpoint must hold, derived from its config (inference spec, tensor names). */
export function expectedTensors(config: QwenVLCheckpointConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const add = (name: string, dims: [number, string][]): void => {
    out.push({ name, shape: dims.map((d) => d[0]), axes: dims.map(([n, label]) => `${label}=${n}`) });
  };
  const t = config.text;
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

  const v = config.vision;
  const C: [number, string] = [v.hiddenSize, 'vision hidden_size'];
  const VI: [number, string] = [v.intermediateSize, 'vision intermediate_size'];
  add('vision.patch_embed.proj.weight', [
    C,
    [v.inChannels, 'in_channels'],
    [v.temporalPatchSize, 'temporal_patch_size'],
    [v.patchSize, 'patch_size'],
    [v.patchSize, 'patch_size'],
  ]);
  for (let i = 0; i < v.depth; i++) {
    const p = `vision.blocks.${i}.`;
    add(`${p}norm1.weight`, [C]);
    add(`${p}norm2.weight`, [C]);
    add(`${p}attn.qkv.weight`, [[3 * v.hiddenSize, '3·vision hidden_size'], C]);
    add(`${p}attn.qkv.bias`, [[3 * v.hiddenSize, '3·vision hidden_size']]);
    add(`${p}attn.proj.weight`, [C, C]);
    add(`${p}attn.proj.bias`, [C]);
    add(`${p}mlp.gate_proj.weight`, [VI, C]);
    add(`${p}mlp.gate_proj.bias`, [VI]);
    add(`${p}mlp.up_proj.weight`, [VI, C]);
    add(`${p}mlp.up_proj.bias`, [VI]);
    add(`${p}mlp.down_proj.weight`, [C, VI]);
    add(`${p}mlp.down_proj.bias`, [C]);
  }
  const M: [number, string] = [v.hiddenSize * v.spatialMergeSize ** 2, 'vision hidden_size·spatial_merge_size²'];
  const O: [number, string] = [v.outHiddenSize, 'out_hidden_size'];
  add('projector.ln_q.weight', [C]);
  add('projector.mlp.0.weight', [M, M]);
  add('projector.mlp.0.bias', [M]);
  add('projector.mlp.2.weight', [O, M]);
  add('projector.mlp.2.bias', [O]);
  return out;
}

/** A repeated block of tensors whose count the config states: `probe(i)` names a tensor every block i holds. */
export interface LayerCount {
  field: string;
  count: number;
  probe: (i: number) => string;
}

/**
 * Checks that the last block each count implies is stored, before the expected tensors are listed: a corrupt count
 * (num_hidden_layers: 1e9) would otherwise build billions of names before the first missing tensor is reported.
 */
export function checkLayerCounts(counts: LayerCount[], has: (name: string) => boolean, file: string): void {
  for (const { field, count, probe } of counts) {
    const last = probe(count - 1);
    if (!has(last)) throw new Error(`${file}: ${field}=${count}, but the checkpoint does not store ${last}`);
  }
}

/** The layer counts of a QwenVL checkpoint, named as canonical tensors. */
export function qwenVLLayerCounts(config: QwenVLCheckpointConfig): LayerCount[] {
  return [
    { field: 'num_hidden_layers', count: config.text.numLayers, probe: (i) => `model.layers.${i}.input_layernorm.weight` },
    { field: 'vision_config depth', count: config.vision.depth, probe: (i) => `vision.blocks.${i}.norm1.weight` },
  ];
}
