/**
 * DiffusionVL-QwenVL (the Qwen2.5-VL 3B / 7B releases): the Qwen2.5-VL vision tower + patch merger as an ONNX graph
 * (contracts in docs/design.md). The text decoder and head are shared: qwen2.ts.
 */
import type { Checkpoint } from './checkpoint';
import type { QwenVLCheckpointConfig } from './checkpointConfig';
import { GraphBuilder, type Value } from '../onnx/graphBuilder';
import { applyRope, geluErf, linear, rmsNorm, scalarCompute, swiglu, toCompute, toFloat32, type LayerContext } from './layers';
import { read, type BuildOptions } from './qwen2';
import { windowSlots } from '../engine/arch/qwenvl/visionLayout';

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
