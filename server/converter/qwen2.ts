/**
 * The Qwen2 text decoder for block diffusion and its LM head, shared by every DiffusionVL architecture (the QwenVL
 * and SigLIP releases run the same Qwen2.5 language model; contracts in docs/design.md).
 */
import type { TextDims, Precision } from '../engine/manifest';
import { GraphBuilder, type Value } from '../onnx/graphBuilder';
import { applyRope, concatRows, linear, rmsNorm, scalarCompute, swiglu, toCompute, toFloat32, type LayerContext } from './layers';

/** Anything that hands out one checkpoint tensor at a time as float32 (shape-checked). */
export interface TensorReader {
  readF32(name: string, expectShape?: number[]): Promise<Float32Array>;
}

export interface GraphProgress {
  (tensor: string): void;
}

export interface BuildOptions {
  precision: Precision;
  compute: 'float32' | 'float16';
  kvDtype: 'float32' | 'float16';
  onTensor: GraphProgress;
}

/** The text sizes the decoder graph needs (a checkpoint config's text part). */
export type DecoderDims = Pick<TextDims, 'hiddenSize' | 'headDim' | 'numHeads' | 'numKvHeads' | 'numLayers' | 'intermediateSize' | 'rmsNormEps' | 'vocabSize'>;

/** Reads a tensor and reports it, so the CLI can show which weight is being converted. */
export async function read(ckpt: TensorReader, name: string, shape: number[], opts: BuildOptions): Promise<Float32Array> {
  opts.onTensor(name);
  return ckpt.readF32(name, shape);
}

/** The text decoder: layers + final norm. Outputs the normed hidden state and the new positions' K/V. */
export async function buildDecoder(ckpt: TensorReader, cfg: { text: DecoderDims }, onnxPath: string, opts: BuildOptions): Promise<void> {
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
    g.save('DiffusionVL Qwen2 text decoder for block diffusion (see docs/design.md).');
  } catch (err) {
    g.abandon();
    throw err;
  }
}

/** The LM head: logits plus, computed in the graph, each position's arg-max id and its softmax probability. */
export async function buildLmHead(ckpt: TensorReader, cfg: { text: DecoderDims }, onnxPath: string, opts: BuildOptions): Promise<void> {
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
    g.save('DiffusionVL LM head with in-graph arg-max and confidence.');
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

