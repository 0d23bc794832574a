/** int4 weights: packing round-trips, and ONNX Runtime's MatMulNBits computes x·dequant(W)ᵀ with our layout. */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { INT4, linear, type Int4Config } from '../server/converter/layers';
import { GraphBuilder } from '../server/onnx/graphBuilder';
import { dequantizeInt4, quantizeInt4 } from '../server/converter/quantize';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

test('quantizeInt4 keeps each weight within half a step of its block scale', () => {
  const n = 6;
  const k = 96;
  const rnd = lcg(1);
  const w = Float32Array.from({ length: n * k }, () => rnd() * 4);
  w.fill(0, 0, 32); // an all-zero block must stay exactly zero
  const q = quantizeInt4(w, n, k);
  const back = dequantizeInt4(q, n, k);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < k / 32; b++) {
      const scale = q.scales[r * (k / 32) + b];
      for (let i = 0; i < 32; i++) {
        const at = r * k + b * 32 + i;
        assert.ok(Math.abs(back[at] - w[at]) <= scale / 2 + 1e-6, `row ${r} block ${b}: ${back[at]} vs ${w[at]}`);
      }
    }
  }
  assert.deepEqual(Array.from(back.subarray(0, 32)), new Array(32).fill(0));
});

// The converter's layout, a K that ends in a partial block (the vision MLP's 3420), and the symmetric layout.
const cases: { k: number; int4?: Int4Config }[] = [{ k: 64 }, { k: 80 }, { k: 64, int4: { blockSize: 32, symmetric: true, accuracyLevel: 4 } }];
for (const { k, int4 } of cases) {
  test(`MatMulNBits on our packing equals a float matmul with the dequantised weights (K ${k}${int4?.symmetric ? ', symmetric' : ''})`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dvl-q4-'));
    try {
      const n = 48;
      const m = 5;
      const rnd = lcg(7);
      const w = Float32Array.from({ length: n * k }, () => rnd());
      const bias = Float32Array.from({ length: n }, () => rnd());
      const g = new GraphBuilder('q4', join(dir, 'q4.onnx'));
      const x = g.input('x', 'float32', [m, k]);
      g.output(linear({ g, precision: 'int4', compute: 'float32', int4 }, x, 'w', w, n, k, bias), 'y', 'float32', [m, n]);
      g.save('int4 linear test');
      // accuracy_level 4 quantises activations to int8 on CPU; its error is bounded, not exact.
      const s = await ort.InferenceSession.create(join(dir, 'q4.onnx'));
      const xs = Float32Array.from({ length: m * k }, () => rnd());
      const y = (await s.run({ x: new ort.Tensor('float32', xs, [m, k]) })).y.data as Float32Array;
      await s.release();
      const layout = int4 ?? INT4;
      const deq = dequantizeInt4(quantizeInt4(w, n, k, layout), n, k, layout.blockSize);
      let maxRel = 0;
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < n; c++) {
          let acc = bias[c];
          let norm = Math.abs(bias[c]);
          for (let i = 0; i < k; i++) {
            acc += xs[r * k + i] * deq[c * k + i];
            norm += Math.abs(xs[r * k + i] * deq[c * k + i]);
          }
          maxRel = Math.max(maxRel, Math.abs(y[r * n + c] - acc) / norm);
        }
      }
      assert.ok(maxRel < 5e-3, `MatMulNBits deviates from the dequantised reference by ${maxRel} (relative to Σ|x·w|)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a graph with a partial last block holds MatMulNBits, not a float MatMul', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dvl-q4-'));
  try {
    const g = new GraphBuilder('q4', join(dir, 'q4.onnx'));
    const x = g.input('x', 'float32', [1, 80]);
    g.output(linear({ g, precision: 'int4', compute: 'float32' }, x, 'w', new Float32Array(16 * 80), 16, 80), 'y', 'float32', [1, 16]);
    // 16 rows × 3 blocks × 16 bytes of codes + 48 scales + 32 zero-point bytes; a float Wᵀ would be 5120 bytes.
    assert.equal(g.weightBytes < 16 * 80 * 4, true, `weights take ${g.weightBytes} bytes`);
    g.abandon();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
