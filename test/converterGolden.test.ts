/**
 * The converted graphs against the official PyTorch outputs on the golden tiny checkpoint: vision features,
 * prefill hidden states and logits, first denoising step (with a KV cache) — max |Δ| ≤ 1e-4 in fp32. fp16 and
 * int4 agreement is measured and reported (and bounded loosely so a broken graph still fails).
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { preprocessImage, preprocessOptionsFor } from '../server/engine/arch/qwenvl/preprocess';
import { halfToFloat } from '../server/engine/half';
import { asQwenVL, onnxDecoderFiles, readManifest, type QwenVLManifest as ModelManifest, type Precision } from '../server/engine/manifest';
import { ropeInvFreq, ropeTables } from '../server/engine/rope';
import { visionFeeds } from '../server/engine/arch/qwenvl';
import { visionLayout } from '../server/engine/arch/qwenvl/visionLayout';
import { maxAbsDiff, readNpyF32 } from './helpers/npy';
import { goldenDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

const TOL = 1e-4;

interface VisionCase {
  image_grid_thw: number[][];
  window_index: number[];
}
interface TextCase {
  prompt_ids: number[];
  prefill_len: number;
  prefill_logits_rows: number[];
  prefill_topk: { ids: number[]; logits: number[] }[];
  denoise0: { positions: [number, number]; cache_len: number; is_mask: boolean[] };
  denoise0_topk: { ids: number[]; logits: number[] }[];
}

const visionCases = JSON.parse(readFileSync(join(goldenDir, 'vision', 'vision.json'), 'utf8')) as Record<string, VisionCase>;
const textFixture = JSON.parse(readFileSync(join(goldenDir, 'text', 'text.json'), 'utf8')) as { logit_stride: number; mask_id: number; cases: Record<string, TextCase> };

async function session(dir: string, file: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(join(dir, file), { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
}

/** Image features for one golden vision case, run through the converted vision graph. */
async function visionFeatures(s: ort.InferenceSession, m: ModelManifest, name: string): Promise<{ data: Float32Array; windowIndex: Int32Array }> {
  const [base, variant] = name.split('@');
  const bounds = variant === 'qwen_default_minmax' ? { minPixels: 3136, maxPixels: 1003520 } : {};
  const pre = await preprocessImage({ path: join(goldenDir, 'images', `${base}.png`) }, { ...preprocessOptionsFor(m.image, m.vision, 'drop'), ...bounds });
  const out = await s.run(visionFeeds(s.inputNames, m.vision, pre.pixelValues, pre.gridThw));
  return { data: out.image_features.data as Float32Array, windowIndex: visionLayout(pre.gridThw, m.vision).windowIndex };
}

/** Block-causal additive mask over absolute positions [past, past+rows) × [0, past+rows). */
function blockCausal(rows: number, past: number, block: number): Float32Array {
  const cols = past + rows;
  const mask = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) if (Math.floor(j / block) > Math.floor((past + i) / block)) mask[i * cols + j] = -Infinity;
  return mask;
}

function embeddingRow(m: ModelManifest, dir: string, id: number): Float32Array {
  const table = readFileSync(join(dir, m.embeddings.file));
  const H = m.embeddings.cols;
  const width = m.embeddings.dtype === 'float32' ? 4 : 2;
  const bytes = table.buffer.slice(table.byteOffset + id * H * width, table.byteOffset + (id + 1) * H * width);
  if (width === 4) return new Float32Array(bytes);
  const row = new Float32Array(H);
  halfToFloat(new Uint16Array(bytes), row);
  return row;
}

type KvData = Float32Array | Uint16Array;

interface DecoderRun {
  hidden: Float32Array;
  keys: KvData[];
  values: KvData[];
}

async function decode(s: ort.InferenceSession, m: ModelManifest, embeds: Float32Array, start: number, mask: Float32Array, past: DecoderRun | undefined): Promise<DecoderRun> {
  const t = m.text;
  const S = embeds.length / t.hiddenSize;
  const P = past ? past.keys[0].length / (t.numKvHeads * t.headDim) : 0;
  const kvw = t.numKvHeads * t.headDim;
  const rope = ropeTables(Array.from({ length: S }, (_, i) => start + i), ropeInvFreq(t.headDim, t.ropeTheta));
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: new ort.Tensor('float32', embeds, [1, S, t.hiddenSize]),
    cos: new ort.Tensor('float32', rope.cos, [S, t.headDim]),
    sin: new ort.Tensor('float32', rope.sin, [S, t.headDim]),
    attention_mask: new ort.Tensor('float32', mask, [S, P + S]),
  };
  const empty = m.kvDtype === 'float32' ? new Float32Array(0) : new Uint16Array(0);
  for (let i = 0; i < t.numLayers; i++) {
    feeds[`past_key.${i}`] = new ort.Tensor(m.kvDtype, past ? past.keys[i] : empty, [1, P, kvw]);
    feeds[`past_value.${i}`] = new ort.Tensor(m.kvDtype, past ? past.values[i] : empty, [1, P, kvw]);
  }
  const out = await s.run(feeds);
  const range = Array.from({ length: t.numLayers }, (_, i) => i);
  return {
    hidden: out.hidden.data as Float32Array,
    keys: range.map((i) => out[`new_key.${i}`].data as KvData),
    values: range.map((i) => out[`new_value.${i}`].data as KvData),
  };
}

function rows(data: Float32Array, width: number, which: number[]): Float32Array {
  const out = new Float32Array(which.length * width);
  which.forEach((r, k) => out.set(data.subarray(r * width, (r + 1) * width), k * width));
  return out;
}

function strided(logits: Float32Array, vocab: number, stride: number): Float32Array {
  const n = Math.ceil(vocab / stride);
  const r = logits.length / vocab;
  const out = new Float32Array(r * n);
  for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) out[i * n + j] = logits[i * vocab + j * stride];
  return out;
}

interface Agreement {
  vision: number;
  prefillHidden: number;
  prefillLogits: number;
  denoiseHidden: number;
  denoiseLogits: number;
  top1Agree: number;
  top1Total: number;
}

async function measure(precision: Precision): Promise<Agreement> {
  const dir = await ensureTinyModel(precision);
  const m = asQwenVL(readManifest(dir));
  const vision = await session(dir, m.files.vision);
  const decoder = await session(dir, onnxDecoderFiles(m).decoder);
  const head = await session(dir, onnxDecoderFiles(m).lmHead);
  const agg: Agreement = { vision: 0, prefillHidden: 0, prefillLogits: 0, denoiseHidden: 0, denoiseLogits: 0, top1Agree: 0, top1Total: 0 };
  try {
    for (const [name, c] of Object.entries(visionCases)) {
      const got = await visionFeatures(vision, m, name);
      assert.deepEqual(Array.from(got.windowIndex), c.window_index, `${name}: window index`);
      agg.vision = Math.max(agg.vision, maxAbsDiff(got.data, readNpyF32(join(goldenDir, 'vision', `${name}.features.npy`)).data));
    }
    const H = m.text.hiddenSize;
    const V = m.text.vocabSize;
    const stride = textFixture.logit_stride;
    for (const [name, c] of Object.entries(textFixture.cases)) {
      const embeds = readNpyF32(join(goldenDir, 'text', `${name}.inputs_embeds.npy`)).data;
      const P = c.prefill_len;
      const pre = await decode(decoder, m, embeds.slice(0, P * H), 0, blockCausal(P, 0, m.blockSize), undefined);
      agg.prefillHidden = Math.max(agg.prefillHidden, maxAbsDiff(pre.hidden, readNpyF32(join(goldenDir, 'text', `${name}.prefill_hidden.npy`)).data));
      const preHead = await head.run({ hidden: new ort.Tensor('float32', rows(pre.hidden, H, c.prefill_logits_rows), [1, c.prefill_logits_rows.length, H]) });
      const preLogits = preHead.logits.data as Float32Array;
      agg.prefillLogits = Math.max(agg.prefillLogits, maxAbsDiff(strided(preLogits, V, stride), readNpyF32(join(goldenDir, 'text', `${name}.prefill_logits_strided.npy`)).data));

      // First denoising step: prompt tail + MASK rows, attending to the prefill cache and the whole block.
      const [s0, s1] = c.denoise0.positions;
      const B = s1 - s0 + 1;
      const block = new Float32Array(B * H);
      const mask = embeddingRow(m, dir, textFixture.mask_id);
      for (let i = 0; i < B; i++) block.set(s0 + i < embeds.length / H ? embeds.subarray((s0 + i) * H, (s0 + i + 1) * H) : mask, i * H);
      const den = await decode(decoder, m, block, s0, new Float32Array(B * (P + B)), pre);
      agg.denoiseHidden = Math.max(agg.denoiseHidden, maxAbsDiff(den.hidden, readNpyF32(join(goldenDir, 'text', `${name}.denoise0_hidden.npy`)).data));
      const denHead = await head.run({ hidden: new ort.Tensor('float32', den.hidden, [1, B, H]) });
      const denLogits = denHead.logits.data as Float32Array;
      agg.denoiseLogits = Math.max(agg.denoiseLogits, maxAbsDiff(strided(denLogits, V, stride), readNpyF32(join(goldenDir, 'text', `${name}.denoise0_logits_strided.npy`)).data));
      const ids = denHead.token_ids.data as BigInt64Array;
      c.denoise0_topk.forEach((k, r) => {
        agg.top1Total++;
        if (Number(ids[r]) === k.ids[0]) agg.top1Agree++;
      });
    }
  } finally {
    await Promise.all([vision.release(), decoder.release(), head.release()]);
  }
  return agg;
}

test('fp32 graphs match the official model to 1e-4', async (t) => {
  const a = await measure('fp32');
  t.diagnostic(`fp32 max|Δ|: ${JSON.stringify(a)}`);
  assert.ok(a.vision <= TOL, `vision features max|Δ| ${a.vision}`);
  assert.ok(a.prefillHidden <= TOL, `prefill hidden max|Δ| ${a.prefillHidden}`);
  assert.ok(a.prefillLogits <= TOL, `prefill logits max|Δ| ${a.prefillLogits}`);
  assert.ok(a.denoiseHidden <= TOL, `denoise hidden max|Δ| ${a.denoiseHidden}`);
  assert.ok(a.denoiseLogits <= TOL, `denoise logits max|Δ| ${a.denoiseLogits}`);
  assert.equal(a.top1Agree, a.top1Total, 'in-graph arg-max equals the official top-1');
});

test('fp16 agreement with the official model is reported', async (t) => {
  const a = await measure('fp16');
  t.diagnostic(`fp16 max|Δ|: ${JSON.stringify(a)}`);
  // fp16 rounding drifts by ~1e-2; a wrong graph is off by orders of magnitude more.
  assert.ok(a.vision < 0.05 && a.prefillHidden < 0.05 && a.denoiseHidden < 0.05, `fp16 drifted too far: ${JSON.stringify(a)}`);
  assert.equal(a.top1Agree, a.top1Total);
});

test('int4 agreement with the official model is reported', async (t) => {
  // The golden weights are i.i.d. Gaussians at large scale (logit std ≈ 12), the worst case for 4-bit blocks, so
  // only gross errors are asserted here; kernel exactness is checked against dequantised weights in quantize.test.
  const a = await measure('int4');
  t.diagnostic(`int4 max|Δ|: ${JSON.stringify(a)}`);
  assert.ok(Object.values(a).every(Number.isFinite));
  assert.ok(a.top1Agree * 2 >= a.top1Total, `int4 top-1 agreement ${a.top1Agree}/${a.top1Total}`);
});
