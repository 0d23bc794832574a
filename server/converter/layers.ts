import type { Precision } from '../engine/manifest';
import { f32ToF16Array, f32ToF16Bits } from '../engine/half';
import type { GraphBuilder, Value } from '../onnx/graphBuilder';
import { quantizeInt4, type Int4Layout } from './quantize';

/**
 * Building blocks shared by the architectures' graphs. `compute` is the activation type inside the graph:
 * float16 for fp16 models, float32 otherwise (int4 weights are dequantised by MatMulNBits against float32
 * activations, which is what ONNX Runtime's fast CPU kernels expect).
 */
export interface LayerContext {
  g: GraphBuilder;
  precision: Precision;
  compute: 'float32' | 'float16';
  /** The int4 layout when not the converter's (micro-benchmarks compare layouts with it). */
  int4?: Int4Config;
}

/** How int4 weights are written: the quantisation layout and the MatMulNBits accuracy level (4: int8 activations). */
export interface Int4Config extends Int4Layout {
  accuracyLevel: 0 | 1 | 2 | 3 | 4;
}

/** The converter's int4 layout; docs/performance.md has the measurements it was chosen by. */
export const INT4: Int4Config = { blockSize: 32, symmetric: false, accuracyLevel: 4 };

export function computeTypeOf(precision: Precision): 'float32' | 'float16' {
  return precision === 'fp16' ? 'float16' : 'float32';
}

/** A float32 vector/matrix stored in the compute type. */
export function floatWeight(ctx: LayerContext, name: string, dims: number[], data: Float32Array): Value {
  return ctx.compute === 'float16' ? ctx.g.weight(name, 'float16', dims, f32ToF16Array(data)) : ctx.g.weight(name, 'float32', dims, data);
}

/** Casts a float32 graph input to the compute type (no node when they agree). */
export function toCompute(ctx: LayerContext, x: Value): Value {
  return ctx.compute === 'float32' ? x : ctx.g.op('Cast', [x], { to: 10 });
}

/** Casts a compute-type value to float32 (no node when they agree). */
export function toFloat32(ctx: LayerContext, x: Value): Value {
  return ctx.compute === 'float32' ? x : ctx.g.op('Cast', [x], { to: 1 });
}

/**
 * y = x · Wᵀ (+ b) for a Hugging Face weight W [n, k]. int4 models use MatMulNBits in the `INT4` layout (a K that is
 * not a multiple of the block size, such as the Qwen2.5-VL vision MLP's 3420, ends in a zero-padded block); the
 * other precisions store Wᵀ for MatMul.
 */
export function linear(ctx: LayerContext, x: Value, name: string, w: Float32Array, n: number, k: number, bias?: Float32Array): Value {
  const { g } = ctx;
  if (w.length !== n * k) throw new Error(`${name}: weight has ${w.length} values, expected ${n}×${k}`);
  const int4 = ctx.int4 ?? INT4;
  let y: Value;
  if (ctx.precision === 'int4') {
    const q = quantizeInt4(w, n, k, int4);
    const bq = g.weight(`${name}.q4`, 'uint8', [n, q.blocksPerRow, int4.blockSize / 2], q.packed);
    const scales = floatWeight(ctx, `${name}.scales`, [n * q.blocksPerRow], q.scales);
    const inputs = [x, bq, scales];
    if (q.zeroPoints) inputs.push(g.weight(`${name}.zero_points`, 'uint8', [q.zeroPoints.length], q.zeroPoints));
    const attrs = { K: k, N: n, bits: 4, block_size: int4.blockSize, accuracy_level: int4.accuracyLevel };
    y = g.op('MatMulNBits', inputs, attrs, 'com.microsoft');
  } else {
    y = g.op('MatMul', [x, transposedWeight(ctx, `${name}.T`, w, n, k)]);
  }
  return bias ? g.op('Add', [y, floatWeight(ctx, `${name}.bias`, [n], bias)]) : y;
}

/** Output rows per streamed piece of a transposed weight (a few MB even for 152k-row embedding tables). */
const TRANSPOSE_ROWS = 16;

/**
 * Stores Wᵀ [k, n] of a row-major W [n, k] in the compute type, transposing and narrowing a few output rows at a
 * time straight into the data file: converting a 2 GB head costs no second 2 GB copy.
 */
export function transposedWeight(ctx: LayerContext, name: string, w: Float32Array, n: number, k: number): Value {
  const half = ctx.compute === 'float16';
  return ctx.g.weightChunks(name, ctx.compute, [k, n], (emit) => {
    const rows = new Float32Array(TRANSPOSE_ROWS * n);
    const narrow = half ? new Uint16Array(TRANSPOSE_ROWS * n) : undefined;
    for (let c0 = 0; c0 < k; c0 += TRANSPOSE_ROWS) {
      const c1 = Math.min(k, c0 + TRANSPOSE_ROWS);
      for (let r = 0; r < n; r++) {
        const src = r * k;
        for (let c = c0; c < c1; c++) rows[(c - c0) * n + r] = w[src + c];
      }
      const count = (c1 - c0) * n;
      if (narrow) {
        for (let i = 0; i < count; i++) narrow[i] = f32ToF16Bits(rows[i]);
        emit(new Uint8Array(narrow.buffer, 0, count * 2));
      } else {
        emit(new Uint8Array(rows.buffer, 0, count * 4));
      }
    }
  });
}

/**
 * Qwen2 RMSNorm: `w · cast(x32 · rsqrt(mean(x32²) + eps))`: statistics in float32, cast back to the compute type
 * before the weight multiply, exactly as the reference does.
 */
export function rmsNorm(ctx: LayerContext, x: Value, name: string, weight: Float32Array, eps: number): Value {
  const { g } = ctx;
  const x32 = toFloat32(ctx, x);
  const meanSq = g.op('ReduceMean', [g.op('Mul', [x32, x32]), g.ints([-1])], { keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.scalar(eps, 'eps')])])]);
  const normed = toCompute(ctx, g.op('Mul', [x32, inv]));
  return g.op('Mul', [normed, floatWeight(ctx, name, [weight.length], weight)]);
}

/** rotate_half over the last axis of size `dim`: [a, b] → [−b, a]. */
export function rotateHalf(ctx: LayerContext, x: Value, dim: number): Value {
  const { g } = ctx;
  const [a, b] = g.opN('Split', [x, g.ints([dim / 2, dim / 2])], 2, { axis: -1 });
  return g.op('Concat', [g.op('Neg', [b]), a], { axis: -1 });
}

/** x·cos + rotate_half(x)·sin, with cos/sin broadcastable to x. */
export function applyRope(ctx: LayerContext, x: Value, cos: Value, sin: Value, dim: number): Value {
  const { g } = ctx;
  return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotateHalf(ctx, x, dim), sin])]);
}

export function silu(ctx: LayerContext, x: Value): Value {
  return ctx.g.op('Mul', [x, ctx.g.op('Sigmoid', [x])]);
}

/** Exact (erf) GELU, as torch.nn.GELU() computes it. */
export function geluErf(ctx: LayerContext, x: Value): Value {
  const { g } = ctx;
  const half = g.op('Mul', [x, scalarCompute(ctx, 0.5)]);
  const erf = g.op('Erf', [g.op('Mul', [x, scalarCompute(ctx, Math.SQRT1_2)])]);
  return g.op('Mul', [half, g.op('Add', [erf, scalarCompute(ctx, 1)])]);
}

/** A scalar constant in the compute type. */
export function scalarCompute(ctx: LayerContext, v: number): Value {
  return floatWeight(ctx, ctx.g.unusedName('c'), [], Float32Array.of(v));
}

/** SwiGLU MLP with gate and up fused into one matmul: down(silu(gate(x)) ⊙ up(x)). */
export function swiglu(
  ctx: LayerContext,
  x: Value,
  name: string,
  hidden: number,
  inter: number,
  w: { gate: Float32Array; up: Float32Array; down: Float32Array; gateBias?: Float32Array; upBias?: Float32Array; downBias?: Float32Array },
): Value {
  const { g } = ctx;
  const fused = concatRows([w.gate, w.up]);
  const fusedBias = w.gateBias && w.upBias ? concatRows([w.gateBias, w.upBias]) : undefined;
  const gu = linear(ctx, x, `${name}.gate_up_proj`, fused, 2 * inter, hidden, fusedBias);
  const [gate, up] = g.opN('Split', [gu, g.ints([inter, inter])], 2, { axis: -1 });
  const act = g.op('Mul', [silu(ctx, gate), up]);
  return linear(ctx, act, `${name}.down_proj`, w.down, hidden, inter, w.downBias);
}

/** Stacks row-major matrices (or vectors) along the first axis. */
export function concatRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
