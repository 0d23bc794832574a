/**
 * DiffusionVL-Qwen (the SigLIP release): the SigLIP tower (hub layers − 1, output before `post_layernorm`, as the
 * official tower returns `hidden_states[-1]`) and the `mlp2x_gelu` projector, as one ONNX graph over a batch of
 * 384×384 views. The Qwen2 decoder and head are shared (qwen2.ts); tiling, unpadding, the bilinear down-scale and the
 * image-newline rows are assembled by the engine (engine/arch/siglip).
 */
import { GraphBuilder, type Value } from '../onnx/graphBuilder';
import { floatWeight, geluErf, linear, scalarCompute, toCompute, toFloat32, type LayerContext } from './layers';
import { read, type BuildOptions, type TensorReader } from './qwen2';
import type { SiglipCheckpointConfig } from './siglipConfig';

/** LayerNorm with float32 statistics (the official fp16 model keeps them in float32 too), result in the compute type. */
function layerNorm(ctx: LayerContext, x: Value, name: string, weight: Float32Array, bias: Float32Array, eps: number): Value {
  const { g } = ctx;
  const w = g.weight(`${name}.weight`, 'float32', [weight.length], weight);
  const b = g.weight(`${name}.bias`, 'float32', [bias.length], bias);
  return toCompute(ctx, g.op('LayerNormalization', [toFloat32(ctx, x), w, b], { axis: -1, epsilon: { float: eps } }));
}

/** torch's gelu(approximate="tanh"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
function geluTanh(ctx: LayerContext, x: Value): Value {
  const { g } = ctx;
  const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
  const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [cube, scalarCompute(ctx, 0.044715)])]), scalarCompute(ctx, Math.sqrt(2 / Math.PI))]);
  return g.op('Mul', [g.op('Mul', [x, scalarCompute(ctx, 0.5)]), g.op('Add', [g.op('Tanh', [inner]), scalarCompute(ctx, 1)])]);
}

/**
 * Inputs `pixel_values` [V, 3, 384, 384] (the processor's normalised views); outputs `vision_features` [V, 729, C]
 * (the tower output the official code takes) and `image_features` [V, 729, H] (after the projector).
 */
export async function buildSiglipVision(ckpt: TensorReader, cfg: SiglipCheckpointConfig, onnxPath: string, opts: BuildOptions): Promise<void> {
  const v = cfg.vision;
  const C = v.hiddenSize;
  const P = v.patchSize;
  const side = Math.floor(v.imageSize / P);
  const seen = side * P; // 378: the conv is "valid", so the last 6 pixel rows/columns of every view are never read
  const n = side * side;
  const nh = v.numHeads;
  const D = v.headDim;
  const H = cfg.text.hiddenSize;
  const g = new GraphBuilder('diffusionvl_siglip_vision', onnxPath);
  const ctx: LayerContext = { g, precision: opts.precision, compute: opts.compute };
  try {
    const pixels = g.input('pixel_values', 'float32', ['V', 3, v.imageSize, v.imageSize]);
    // Patchify as a matmul: crop to 378², split into 27×27 patches of (c, ky, kx), in token order py·27 + px.
    const cropped = g.op('Slice', [pixels, g.ints([0, 0]), g.ints([seen, seen]), g.ints([2, 3])]);
    const six = g.op('Reshape', [cropped, g.ints([-1, 3, side, P, side, P])]); // [V,c,py,ky,px,kx]
    const patches = g.op('Reshape', [g.op('Transpose', [six], { perm: [0, 2, 4, 1, 3, 5] }), g.ints([-1, n, 3 * P * P])]);
    const pe = await read(ckpt, 'siglip.embeddings.patch_embedding.weight', [C, 3, P, P], opts);
    const peBias = await read(ckpt, 'siglip.embeddings.patch_embedding.bias', [C], opts);
    // The patch embedding stays in float for int4 models (588 is not a multiple of the quantisation block).
    let x = linear({ ...ctx, precision: ctx.precision === 'int4' ? 'fp32' : ctx.precision }, toCompute(ctx, patches), 'siglip.patch_embedding', pe, C, 3 * P * P, peBias);
    const pos = await read(ckpt, 'siglip.embeddings.position_embedding.weight', [n, C], opts);
    x = g.op('Add', [x, floatWeight(ctx, 'siglip.position_embedding', [n, C], pos)]);
    const scale = scalarCompute(ctx, D ** -0.5);

    for (let i = 0; i < v.numLayers; i++) {
      const p = `siglip.encoder.layers.${i}.`;
      const ln = async (which: string) =>
        layerNorm(ctx, x, `${p}${which}`, await read(ckpt, `${p}${which}.weight`, [C], opts), await read(ckpt, `${p}${which}.bias`, [C], opts), v.layerNormEps);
      const h = await ln('layer_norm1');
      const w = (proj: string) => read(ckpt, `${p}self_attn.${proj}.weight`, [C, C], opts);
      const b = (proj: string) => read(ckpt, `${p}self_attn.${proj}.bias`, [C], opts);
      const wqkv = new Float32Array(3 * C * C);
      const bqkv = new Float32Array(3 * C);
      for (const [k, proj] of ['q_proj', 'k_proj', 'v_proj'].entries()) {
        wqkv.set(await w(proj), k * C * C);
        bqkv.set(await b(proj), k * C);
      }
      const qkv = linear(ctx, h, `${p}self_attn.qkv_proj`, wqkv, 3 * C, C, bqkv);
      const heads = (t: Value, perm: number[]) => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, nh, D])])], { perm });
      const [q, k, val] = g.opN('Split', [qkv, g.ints([C, C, C])], 3, { axis: -1 });
      // Eager attention order: q·kᵀ, then the scale, softmax in float32; no mask.
      const scores = g.op('Mul', [g.op('MatMul', [heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1])]), scale]);
      const probs = toCompute(ctx, g.op('Softmax', [toFloat32(ctx, scores)], { axis: -1 }));
      const attn = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, heads(val, [0, 2, 1, 3])])], { perm: [0, 2, 1, 3] }), g.ints([0, 0, C])]);
      x = g.op('Add', [x, linear(ctx, attn, `${p}self_attn.out_proj`, await w('out_proj'), C, C, await b('out_proj'))]);

      const h2 = await ln('layer_norm2');
      const I = v.intermediateSize;
      const fc1 = linear(ctx, h2, `${p}mlp.fc1`, await read(ckpt, `${p}mlp.fc1.weight`, [I, C], opts), I, C, await read(ckpt, `${p}mlp.fc1.bias`, [I], opts));
      x = g.op('Add', [x, linear(ctx, geluTanh(ctx, fc1), `${p}mlp.fc2`, await read(ckpt, `${p}mlp.fc2.weight`, [C, I], opts), C, I, await read(ckpt, `${p}mlp.fc2.bias`, [C], opts))]);
    }
    g.output(toFloat32(ctx, x), 'vision_features', 'float32', ['V', n, C]);

    // mlp2x_gelu: Linear → exact-erf GELU → Linear, on every view's every token, before any unpadding.
    const p0 = linear(ctx, x, 'projector.0', await read(ckpt, 'projector.0.weight', [H, C], opts), H, C, await read(ckpt, 'projector.0.bias', [H], opts));
    const p2 = linear(ctx, geluErf(ctx, p0), 'projector.2', await read(ckpt, 'projector.2.weight', [H, H], opts), H, H, await read(ckpt, 'projector.2.bias', [H], opts));
    g.output(toFloat32(ctx, p2), 'image_features', 'float32', ['V', n, H]);
    g.save('SigLIP tower (before post_layernorm) + mlp2x_gelu projector (DiffusionVL-Qwen).');
  } catch (err) {
    g.abandon();
    throw err;
  }
}
