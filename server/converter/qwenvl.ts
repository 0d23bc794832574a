/**
 * DiffusionVL-QwenVL (the Qwen2.5-VL 3B / 7B releases): text decoder for block diffusion, LM head and the
 * Qwen2.5-VL vision tower + patch merger, as ONNX graphs (contracts in docs/design.md).
 */
import type { Checkpoint } from './checkpoint';
import type { QwenVLCheckpointConfig } from './checkpointConfig';
import { GraphBuilder, type Value } from './onnx/graphBuilder';
import {
  applyRope,
  concatRows,
  geluErf,
  linear,
  rmsNorm,
  scalarCompute,
  swiglu,
  toCompute,
  toFloat32,
  type LayerContext,
} from './layers';
import type { Precision } from '../engine/manifest';
import { windowSlots } from '../engine/visionLayout';

export interface GraphProgress {
  (tensor: string): void;
}

interface BuildOptions {
  precision: Precision;
  compute: 'float32' | 'float16';
  kvDtype: 'float32' | 'float16';
  onTensor: GraphProgress;
}

/** Reads a tensor and reports it, so the CLI can show which weight is being converted. */
async function read(ckpt: Checkpoint, name: string, shape: number[], opts: BuildOptions): Promise<Float32Array> {
  opts.onTensor(name);
  return ckpt.readF32(name, shape);
}

/** The text decoder: layers + final norm. Outputs the normed hidden state and the new positions' K/V. */
export async function buildDecoder(ckpt: Checkpoint, cfg: QwenVLCheckpointConfig, onnxPath: string, opts: BuildOptions): Promise<void> {
  const t = cfg.text;
  const H = t.hiddenSize;
  const D = t.headDim;
  const nH = t.numHeads;
  const nKV = t.numKvHeads;
  const group = nH / nKV;
  const g = new GraphBuilder('diffusionvl_decoder', onnxPath);
  const ctx: LayerContext = { g, precision: opts.precision, compute: opts.compute };
  try {
    const embeds = g.input('inputs_embeds', 'float32', [1, 'S', H]);
    const cosIn = g.input('cos', 'float32', ['S', D]);
    const sinIn = g.input('sin', 'float32', ['S', D]);
    const mask = g.input('attention_mask', 'float32', ['S', 'P+S']);
    // cos/sin are cast to the model dtype as the reference does, then shaped [1, S, 1, D] to broadcast over heads.
    const cos = g.op('Reshape', [toCompute(ctx, cosIn), g.ints([1, -1, 1, D])]);
    const sin = g.op('Reshape', [toCompute(ctx, sinIn), g.ints([1, -1, 1, D])]);
    const maskC = toCompute(ctx, mask);
    const scale = scalarCompute(ctx, 1 / Math.sqrt(D));

    let x = toCompute(ctx, embeds);
    for (let i = 0; i < t.numLayers; i++) {
      const p = `model.layers.${i}.`;
      const pastK = g.input(`past_key.${i}`, opts.kvDtype, [1, 'P', nKV * D]);
      const pastV = g.input(`past_value.${i}`, opts.kvDtype, [1, 'P', nKV * D]);

      const h = rmsNorm(ctx, x, `${p}input_layernorm.weight`, await read(ckpt, `${p}input_layernorm.weight`, [H], opts), t.rmsNormEps);
      // q, k and v share one matmul.
      const wqkv = concatRows([
        await read(ckpt, `${p}self_attn.q_proj.weight`, [nH * D, H], opts),
        await read(ckpt, `${p}self_attn.k_proj.weight`, [nKV * D, H], opts),
        await read(ckpt, `${p}self_attn.v_proj.weight`, [nKV * D, H], opts),
      ]);
      const bqkv = concatRows([
        await read(ckpt, `${p}self_attn.q_proj.bias`, [nH * D], opts),
        await read(ckpt, `${p}self_attn.k_proj.bias`, [nKV * D], opts),
        await read(ckpt, `${p}self_attn.v_proj.bias`, [nKV * D], opts),
      ]);
      const qkv = linear(ctx, h, `${p}self_attn.qkv_proj`, wqkv, (nH + 2 * nKV) * D, H, bqkv);
      const [q, k, v] = g.opN('Split', [qkv, g.ints([nH * D, nKV * D, nKV * D])], 3, { axis: -1 });

      const qRot = applyRope(ctx, g.op('Reshape', [q, g.ints([0, 0, nH, D])]), cos, sin, D);
      const kRot = applyRope(ctx, g.op('Reshape', [k, g.ints([0, 0, nKV, D])]), cos, sin, D);
      const newK = g.op('Reshape', [kRot, g.ints([0, 0, nKV * D])]);
      g.output(toKv(ctx, newK, opts.kvDtype), `new_key.${i}`, opts.kvDtype, [1, 'S', nKV * D]);
      g.output(toKv(ctx, v, opts.kvDtype), `new_value.${i}`, opts.kvDtype, [1, 'S', nKV * D]);

      // Keys/values over cache + new positions, token-major → per KV head. Query heads are grouped
      // [kv, group] so GQA needs no copies of K/V: MatMul broadcasts the size-1 group axis.
      const kAll = g.op('Concat', [fromKv(ctx, pastK, opts.kvDtype), newK], { axis: 1 });
      const vAll = g.op('Concat', [fromKv(ctx, pastV, opts.kvDtype), v], { axis: 1 });
      const kT = g.op('Transpose', [g.op('Reshape', [kAll, g.ints([0, 0, nKV, 1, D])])], { perm: [0, 2, 3, 4, 1] }); // [1,kv,1,D,T]
      const vH = g.op('Transpose', [g.op('Reshape', [vAll, g.ints([0, 0, nKV, 1, D])])], { perm: [0, 2, 3, 1, 4] }); // [1,kv,1,T,D]
      const qH = g.op('Transpose', [g.op('Reshape', [qRot, g.ints([0, 0, nKV, group, D])])], { perm: [0, 2, 3, 1, 4] }); // [1,kv,g,S,D]
      const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qH, kT]), scale]), maskC]); // [1,kv,g,S,T]
      // Softmax in float32 even for fp16 models (keeps large logits from overflowing).
      const probs = toCompute(ctx, g.op('Softmax', [toFloat32(ctx, scores)], { axis: -1 }));
      const attn = g.op('Transpose', [g.op('MatMul', [probs, vH])], { perm: [0, 3, 1, 2, 4] }); // [1,S,kv,g,D]
      const o = linear(ctx, g.op('Reshape', [attn, g.ints([0, 0, nH * D])]), `${p}self_attn.o_proj`, await read(ckpt, `${p}self_attn.o_proj.weight`, [H, nH * D], opts), H, nH * D);
      x = g.op('Add', [x, o]);

      const h2 = rmsNorm(ctx, x, `${p}post_attention_layernorm.weight`, await read(ckpt, `${p}post_attention_layernorm.weight`, [H], opts), t.rmsNormEps);
      const mlp = swiglu(ctx, h2, `${p}mlp`, H, t.intermediateSize, {
        gate: await read(ckpt, `${p}mlp.gate_proj.weight`, [t.intermediateSize, H], opts),
        up: await read(ckpt, `${p}mlp.up_proj.weight`, [t.intermediateSize, H], opts),
        down: await read(ckpt, `${p}mlp.down_proj.weight`, [H, t.intermediateSize], opts),
      });
      x = g.op('Add', [x, mlp]);
    }
    const hidden = rmsNorm(ctx, x, 'model.norm.weight', await read(ckpt, 'model.norm.weight', [H], opts), t.rmsNormEps);
    g.output(toFloat32(ctx, hidden), 'hidden', 'float32', [1, 'S', H]);
    g.save('DiffusionVL-QwenVL text decoder for block diffusion (see docs/design.md).');
  } catch (err) {
    g.abandon();
    throw err;
  }
}

/** The LM head: logits plus, computed in the graph, each position's arg-max id and its softmax probability. */
export async function buildLmHead(ckpt: Checkpoint, cfg: QwenVLCheckpointConfig, onnxPath: string, opts: BuildOptions): Promise<void> {
  const { hiddenSize: H, vocabSize: V } = cfg.text;
  const g = new GraphBuilder('diffusionvl_lm_head', onnxPath);
  const ctx: LayerContext = { g, precision: opts.precision, compute: opts.compute };
  try {
    const hidden = g.input('hidden', 'float32', [1, 'S', H]);
    // Tied checkpoints (3B) resolve lm_head.weight to the embedding table.
    const w = await read(ckpt, 'lm_head.weight', [V, H], opts);
    // Logits carry the model dtype's rounding, then are widened (the reference casts after lm_head).
    const logits = toFloat32(ctx, linear(ctx, toCompute(ctx, hidden), 'lm_head', w, V, H));
    g.output(logits, 'logits', 'float32', [1, 'S', V]);
    const ids = g.op('ArgMax', [logits], { axis: -1, keepdims: 0, select_last_index: 0 });
    g.output(ids, 'token_ids', 'int64', [1, 'S']);
    const probs = g.op('ReduceMax', [g.op('Softmax', [logits], { axis: -1 }), g.ints([-1])], { keepdims: 0 });
    g.output(probs, 'token_probs', 'float32', [1, 'S']);
    g.save('DiffusionVL-QwenVL LM head with in-graph arg-max and confidence.');
  } catch (err) {
    g.abandon();
    throw err;
  }
}

/** Qwen2.5-VL ViT (window + full attention blocks, 2-D rotary) + PatchMerger, output in raster order. */
export async function buildVision(ckpt: Checkpoint, cfg: QwenVLCheckpointConfig, onnxPath: string, opts: BuildOptions): Promise<void> {
  const v = cfg.vision;
  const C = v.hiddenSize;
  const Dv = v.headDim;
  const nh = v.numHeads;
  const patchDim = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const unit = v.spatialMergeSize * v.spatialMergeSize;
  const g = new GraphBuilder('diffusionvl_vision', onnxPath);
  const ctx: LayerContext = { g, precision: opts.precision, compute: opts.compute };
  const full = new Set(v.fullAttentionBlocks);
  try {
    const pixels = g.input('pixel_patches', 'float32', ['N', patchDim]);
    const cos32 = g.op('Unsqueeze', [g.input('cos', 'float32', ['N', Dv]), g.ints([1])]); // [N,1,Dv]
    const sin32 = g.op('Unsqueeze', [g.input('sin', 'float32', ['N', Dv]), g.ints([1])]);
    // Window attention runs per window, batched: window order makes each window a contiguous run of rows, padded
    // to `slots` rows (a window of window_size² pixels) in a [windows, slots] layout; padded keys get −∞.
    const slots = windowSlots(v);
    const windowGather = g.input('window_gather', 'int64', ['WS']);
    const windowScatter = g.input('window_scatter', 'int64', ['N']);
    const windowBias = toCompute(ctx, g.input('window_bias', 'float32', ['W', 1, 1, slots]));
    const restore = g.input('restore_index', 'int64', ['M']);
    const scale = scalarCompute(ctx, 1 / Math.sqrt(Dv));

    // Conv3d with kernel = stride is a matmul over flattened (c, t, py, px) patches; it has no bias.
    const pe = await read(ckpt, 'vision.patch_embed.proj.weight', [C, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize], opts);
    let x = linear({ ...ctx, precision: ctx.precision === 'int4' ? 'fp32' : ctx.precision }, toCompute(ctx, pixels), 'vision.patch_embed', pe, C, patchDim);

    for (let i = 0; i < v.depth; i++) {
      const p = `vision.blocks.${i}.`;
      const h = rmsNorm(ctx, x, `${p}norm1.weight`, await read(ckpt, `${p}norm1.weight`, [C], opts), 1e-6);
      const qkv = linear(ctx, h, `${p}attn.qkv`, await read(ckpt, `${p}attn.qkv.weight`, [3 * C, C], opts), 3 * C, C, await read(ckpt, `${p}attn.qkv.bias`, [3 * C], opts));
      const [q, k, val] = g.opN('Split', [g.op('Reshape', [qkv, g.ints([0, 3, nh, Dv])]), g.ints([1, 1, 1])], 3, { axis: 1 });
      // Rotary in float32 (the reference upcasts q/k for it), then back to the model dtype.
      const rope = (t: Value) => toCompute(ctx, applyRope(ctx, toFloat32(ctx, g.op('Reshape', [t, g.ints([0, nh, Dv])])), cos32, sin32, Dv));
      const qR = rope(q);
      const kR = rope(k);
      const vR = g.op('Reshape', [val, g.ints([0, nh, Dv])]);
      let attn: Value;
      if (full.has(i)) {
        // One image: every patch sees every patch, no mask.
        const qH = g.op('Transpose', [qR], { perm: [1, 0, 2] }); // [nh,N,Dv]
        const kT = g.op('Transpose', [kR], { perm: [1, 2, 0] }); // [nh,Dv,N]
        const vH = g.op('Transpose', [vR], { perm: [1, 0, 2] });
        const probs = toCompute(ctx, g.op('Softmax', [toFloat32(ctx, g.op('Mul', [g.op('MatMul', [qH, kT]), scale]))], { axis: -1 }));
        attn = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, vH])], { perm: [1, 0, 2] }), g.ints([0, C])]);
      } else {
        const windowed = (t: Value, perm: number[]) =>
          g.op('Transpose', [g.op('Reshape', [g.op('Gather', [t, windowGather], { axis: 0 }), g.ints([-1, slots, nh, Dv])])], { perm });
        const qW = windowed(qR, [0, 2, 1, 3]); // [W,nh,slots,Dv]
        const kW = windowed(kR, [0, 2, 3, 1]); // [W,nh,Dv,slots]
        const vW = windowed(vR, [0, 2, 1, 3]);
        const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qW, kW]), scale]), windowBias]);
        const probs = toCompute(ctx, g.op('Softmax', [toFloat32(ctx, scores)], { axis: -1 }));
        const out = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, vW])], { perm: [0, 2, 1, 3] }), g.ints([-1, C])]); // [W·slots, C]
        attn = g.op('Gather', [out, windowScatter], { axis: 0 });
      }
      x = g.op('Add', [x, linear(ctx, attn, `${p}attn.proj`, await read(ckpt, `${p}attn.proj.weight`, [C, C], opts), C, C, await read(ckpt, `${p}attn.proj.bias`, [C], opts))]);

      const h2 = rmsNorm(ctx, x, `${p}norm2.weight`, await read(ckpt, `${p}norm2.weight`, [C], opts), 1e-6);
      const I = v.intermediateSize;
      x = g.op('Add', [
        x,
        swiglu(ctx, h2, `${p}mlp`, C, I, {
          gate: await read(ckpt, `${p}mlp.gate_proj.weight`, [I, C], opts),
          up: await read(ckpt, `${p}mlp.up_proj.weight`, [I, C], opts),
          down: await read(ckpt, `${p}mlp.down_proj.weight`, [C, I], opts),
          gateBias: await read(ckpt, `${p}mlp.gate_proj.bias`, [I], opts),
          upBias: await read(ckpt, `${p}mlp.up_proj.bias`, [I], opts),
          downBias: await read(ckpt, `${p}mlp.down_proj.bias`, [C], opts),
        }),
      ]);
    }

    // PatchMerger: RMSNorm per patch, then each 2×2 unit's four patches side by side → MLP with exact GELU.
    const merged = g.op('Reshape', [rmsNorm(ctx, x, 'projector.ln_q.weight', await read(ckpt, 'projector.ln_q.weight', [C], opts), 1e-6), g.ints([-1, unit * C])]);
    const M = unit * C;
    const h1 = geluErf(ctx, linear(ctx, merged, 'projector.mlp.0', await read(ckpt, 'projector.mlp.0.weight', [M, M], opts), M, M, await read(ckpt, 'projector.mlp.0.bias', [M], opts)));
    const out = linear(ctx, h1, 'projector.mlp.2', await read(ckpt, 'projector.mlp.2.weight', [v.outHiddenSize, M], opts), v.outHiddenSize, M, await read(ckpt, 'projector.mlp.2.bias', [v.outHiddenSize], opts));
    // Undo the window permutation so features come out in raster order of the merged grid.
    const features = g.op('Gather', [out, restore], { axis: 0 });
    g.output(toFloat32(ctx, features), 'image_features', 'float32', ['M', v.outHiddenSize]);
    g.save('Qwen2.5-VL vision tower + patch merger (DiffusionVL-QwenVL).');
  } catch (err) {
    g.abandon();
    throw err;
  }
}

function toKv(ctx: LayerContext, x: Value, kv: 'float32' | 'float16'): Value {
  if (kv === ctx.compute) return x;
  return ctx.g.op('Cast', [x], { to: kv === 'float16' ? 10 : 1 });
}

function fromKv(ctx: LayerContext, x: Value, kv: 'float32' | 'float16'): Value {
  if (kv === ctx.compute) return x;
  return ctx.g.op('Cast', [x], { to: ctx.compute === 'float16' ? 10 : 1 });
}

