/**
 * The SigLIP variant (DiffusionVL-Qwen) against the official PyTorch outputs on its golden tiny checkpoint: views
 * and pixel tensors bit-identical, grids and map sizes identical, SigLIP / projector / assembled features / hidden
 * states ≤ 1e-4, logits ≤ 5e-4 (fp32), generated ids identical fused and unfused, unfused forward counts equal.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { preprocessSiglip, readNewline } from '../server/engine/arch/siglip';
import { assembleAnyres, assembleSingle, unpaddedMap } from '../server/engine/arch/siglip/assemble';
import { SIGLIP_PIXEL_LUT } from '../server/engine/arch/siglip/pixels';
import { createEngine } from '../server/engine/engine';
import { sha256OfFloat32 } from '../server/engine/image';
import { onnxDecoderFiles, readManifest, type SiglipManifest } from '../server/engine/manifest';
import { ropeInvFreq, ropeTables } from '../server/engine/rope';
import { maxAbsDiff, readNpyF32 } from './helpers/npy';
import { siglipCaseImages, siglipCaseOptions } from './helpers/goldenCases';
import { fixturesDir } from './helpers/paths';
import { SIGLIP_GOLDEN_SAFETENSORS_SHA256 } from './helpers/checkpoint/tinySiglipCheckpoint';
import { ensureTinySiglipCheckpoint, ensureTinySiglipModel } from './helpers/tinySiglipModel';

const dir = join(fixturesDir, 'golden-siglip');
const TOL = 1e-4;
const LOGIT_TOL = 5e-4;

interface PreCase {
  images: string[];
  grid_rows_cols?: [number, number];
  num_views: number;
  view_uint8_sha256: string[];
  pixel_values_sha256: string;
}
interface VisionCase {
  num_views?: number;
  map_hw_after_unpad?: [number, number];
  final_map_hw?: [number, number];
  num_image_tokens?: number;
  unpadded_map_shape?: number[];
}
interface GenCase {
  context: string;
  prompt_ids: number[];
  images: string[];
  multi_image_mode: string | null;
  gen_kwargs: { gen_length: number; steps: number; remasking_strategy: string; confidence_threshold?: number };
  block_size: number;
  prompt_len_after_splice: number;
  prefill_len: number;
  output_ids: number[];
  forwards: { prefill: number; denoise: number; commit: number };
  text?: { prefill_logits_rows: number[]; denoise0: { positions: [number, number]; cache_len: number; is_mask: boolean[]; logits_rows: number[] } };
}

const pre = JSON.parse(readFileSync(join(dir, 'preprocess.json'), 'utf8')) as { lut: number[]; images: Record<string, PreCase> };
const vision = (JSON.parse(readFileSync(join(dir, 'vision.json'), 'utf8')) as { vision: Record<string, VisionCase> }).vision;
const gen = JSON.parse(readFileSync(join(dir, 'generate.json'), 'utf8')) as { vocab_stride: number; stride: number; cases: Record<string, GenCase> };
const image = (f: string) => join(dir, 'images', f);
const aspectOf = (name: string) => (name.startsWith('pair_pad') ? 'pad' : 'anyres_max_4');

function stridedRows(data: Float32Array, rows: number, cols: number, stride: number): Float32Array {
  const idx: number[] = [];
  for (let r = 0; r < rows; r += stride) idx.push(r);
  if (idx[idx.length - 1] !== rows - 1) idx.push(rows - 1);
  const out = new Float32Array(idx.length * cols);
  idx.forEach((r, i) => out.set(data.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}

function diagonal(data: Float32Array, views: number, side: number, cols: number): Float32Array {
  const out = new Float32Array(views * side * cols);
  for (let v = 0; v < views; v++) {
    for (let k = 0; k < side; k++) {
      const t = v * side * side + k * side + ((k + v) % side);
      out.set(data.subarray(t * cols, (t + 1) * cols), (v * side + k) * cols);
    }
  }
  return out;
}

test('SigLIP pixel LUT equals the official rescale + normalise', () => {
  assert.deepEqual(Array.from(SIGLIP_PIXEL_LUT), pre.lut.map((x) => Math.fround(x)));
});

test('SigLIP preprocessing: every view and pixel tensor bit-identical, grids identical', async () => {
  for (const [name, g] of Object.entries(pre.images)) {
    const parts = [];
    for (const f of g.images) parts.push(await preprocessSiglip({ path: image(f) }, { image: { gridPinpoints: PINPOINTS } as SiglipManifest['image'], vision: { imageSize: 384, patchSize: 14 } as SiglipManifest['vision'] }, aspectOf(name)));
    const views = parts.flatMap((p) => p.views);
    assert.equal(views.length, g.num_views, `${name}: views`);
    views.forEach((v, i) => assert.equal(createHash('sha256').update(v.data).digest('hex'), g.view_uint8_sha256[i], `${name} view ${i}`));
    const pixels = new Float32Array(parts.reduce((n, p) => n + p.pixelValues.length, 0));
    let at = 0;
    for (const p of parts) {
      pixels.set(p.pixelValues, at);
      at += p.pixelValues.length;
    }
    assert.equal(sha256OfFloat32(pixels), g.pixel_values_sha256, `${name}: pixel_values`);
    if (g.grid_rows_cols) assert.deepEqual(parts[0].grid, g.grid_rows_cols, `${name}: grid`);
  }
});

const PINPOINTS: [number, number][] = [];
for (let i = 1; i <= 6; i++) for (let j = 1; j <= 6; j++) PINPOINTS.push([384 * i, 384 * j]);

test('the regenerated tiny SigLIP checkpoint is byte-identical to the reference', async () => {
  const ckpt = await ensureTinySiglipCheckpoint();
  assert.equal(createHash('sha256').update(readFileSync(join(ckpt, 'model.safetensors'))).digest('hex'), SIGLIP_GOLDEN_SAFETENSORS_SHA256);
});

async function visionRun(s: ort.InferenceSession, pixels: Float32Array, views: number): Promise<{ siglip: Float32Array; projected: Float32Array }> {
  const out = await s.run({ pixel_values: new ort.Tensor('float32', pixels, [views, 3, 384, 384]) });
  return { siglip: out.vision_features.data as Float32Array, projected: out.image_features.data as Float32Array };
}

/** The rows one golden image contributes to the prompt, through the converted graph and the engine's assembly. */
async function imageRows(s: ort.InferenceSession, m: SiglipManifest, modelDir: string, file: string, aspect: string): Promise<Float32Array> {
  const p = await preprocessSiglip({ path: image(file) }, m, aspect);
  const { projected } = await visionRun(s, p.pixelValues, p.views.length);
  const H = m.text.hiddenSize;
  if (p.mode === 'pad') return assembleSingle(projected, H, readNewline(modelDir, m));
  return assembleAnyres({ features: projected, hidden: H, side: 27, grid: p.grid, imageSize: [p.original.width, p.original.height], maxPatches: p.maxPatches, newline: readNewline(modelDir, m) }).rows;
}

test('SigLIP tower, projector, unpadded map and assembled features match the official outputs (fp32)', async () => {
  const modelDir = await ensureTinySiglipModel('fp32');
  const m = readManifest(modelDir) as SiglipManifest;
  const s = await ort.InferenceSession.create(join(modelDir, m.files.vision), { intraOpNumThreads: 1 });
  const H = m.text.hiddenSize;
  let worst = 0;
  for (const [name, v] of Object.entries(vision)) {
    const g = pre.images[name];
    if (!g || name.startsWith('pair_anyres')) continue;
    const parts = [];
    for (const f of g.images) parts.push(await preprocessSiglip({ path: image(f) }, m, aspectOf(name)));
    const views = parts.reduce((n, p) => n + p.views.length, 0);
    const pixels = new Float32Array(views * 3 * 384 * 384);
    let at = 0;
    for (const p of parts) {
      pixels.set(p.pixelValues, at);
      at += p.pixelValues.length;
    }
    const { siglip, projected } = await visionRun(s, pixels, views);
    const d = maxAbsDiff(diagonal(siglip, views, 27, m.vision.hiddenSize), readNpyF32(join(dir, 'vision', `${name}.siglip.diag.npy`)).data);
    assert.ok(d <= TOL, `${name}: SigLIP max|Δ| ${d}`);
    worst = Math.max(worst, d);
    if (name === 'img2_tall_300x800' || name === 'pair_pad_img3+img6') {
      const dp = maxAbsDiff(diagonal(projected, views, 27, H), readNpyF32(join(dir, 'vision', `${name}.projector.diag.npy`)).data);
      assert.ok(dp <= TOL, `${name}: projector max|Δ| ${dp}`);
    }
    if (name.startsWith('pair_pad')) continue;
    const p = parts[0];
    const input = { features: projected, hidden: H, side: 27, grid: p.grid, imageSize: [p.original.width, p.original.height] as [number, number], maxPatches: p.maxPatches, newline: readNewline(modelDir, m) };
    const a = assembleAnyres(input);
    assert.deepEqual([a.unpad.height, a.unpad.width], v.map_hw_after_unpad, `${name}: unpadded map`);
    assert.deepEqual(a.map, v.final_map_hw, `${name}: final map`);
    assert.equal(a.rows.length / H, v.num_image_tokens, `${name}: image tokens`);
    const df = maxAbsDiff(stridedRows(a.rows, a.rows.length / H, H, 16), readNpyF32(join(dir, 'vision', `${name}.features.strided.npy`)).data);
    assert.ok(df <= TOL, `${name}: assembled features max|Δ| ${df}`);
    if (v.unpadded_map_shape) {
      const { map, unpad } = unpaddedMap(input);
      assert.deepEqual([unpad.height, unpad.width, H], v.unpadded_map_shape);
      const dm = maxAbsDiff(stridedRows(map, unpad.height * unpad.width, H, 16), readNpyF32(join(dir, 'vision', `${name}.unpadded_map.strided.npy`)).data);
      assert.ok(dm <= TOL, `${name}: unpadded map max|Δ| ${dm}`);
    }
  }
  await s.release();
  assert.ok(worst > 0, 'the comparison really ran');
});

/** Block-causal additive mask over absolute positions [past, past+rows) × [0, past+rows). */
function blockCausal(rows: number, past: number, block: number): Float32Array {
  const cols = past + rows;
  const mask = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) if (Math.floor(j / block) > Math.floor((past + i) / block)) mask[i * cols + j] = -Infinity;
  return mask;
}

function vocabStrided(logits: Float32Array, vocab: number, stride: number): Float32Array {
  const n = Math.ceil(vocab / stride);
  const r = logits.length / vocab;
  const out = new Float32Array(r * n);
  for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) out[i * n + j] = logits[i * vocab + j * stride];
  return out;
}

test('prompt embeddings, prefill and first denoising step match the official outputs (fp32)', async () => {
  const modelDir = await ensureTinySiglipModel('fp32');
  const m = readManifest(modelDir) as SiglipManifest;
  const opts = { intraOpNumThreads: 1 };
  const [vis, dec, head] = await Promise.all([m.files.vision, onnxDecoderFiles(m).decoder, onnxDecoderFiles(m).lmHead].map((f) => ort.InferenceSession.create(join(modelDir, f), opts)));
  const t = m.text;
  const H = t.hiddenSize;
  const table = readFileSync(join(modelDir, m.embeddings.file));
  const embRow = (id: number) => new Float32Array(table.buffer.slice(table.byteOffset + id * H * 4, table.byteOffset + (id + 1) * H * 4));
  const kvw = t.numKvHeads * t.headDim;
  const run = async (embeds: Float32Array, start: number, mask: Float32Array, past?: { keys: Float32Array[]; values: Float32Array[] }) => {
    const S = embeds.length / H;
    const P = past ? past.keys[0].length / kvw : 0;
    const rope = ropeTables(Array.from({ length: S }, (_, i) => start + i), ropeInvFreq(t.headDim, t.ropeTheta));
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [1, S, H]),
      cos: new ort.Tensor('float32', rope.cos, [S, t.headDim]),
      sin: new ort.Tensor('float32', rope.sin, [S, t.headDim]),
      attention_mask: new ort.Tensor('float32', mask, [S, P + S]),
    };
    for (let i = 0; i < t.numLayers; i++) {
      feeds[`past_key.${i}`] = new ort.Tensor('float32', past ? past.keys[i] : new Float32Array(0), [1, P, kvw]);
      feeds[`past_value.${i}`] = new ort.Tensor('float32', past ? past.values[i] : new Float32Array(0), [1, P, kvw]);
    }
    const out = await dec.run(feeds);
    const layers = Array.from({ length: t.numLayers }, (_, i) => i);
    return { hidden: out.hidden.data as Float32Array, keys: layers.map((i) => out[`new_key.${i}`].data as Float32Array), values: layers.map((i) => out[`new_value.${i}`].data as Float32Array) };
  };
  const logitsOf = async (hidden: Float32Array) => (await head.run({ hidden: new ort.Tensor('float32', hidden, [1, hidden.length / H, H]) }, ['logits'])).logits.data as Float32Array;
  const rowsOf = (data: Float32Array, width: number, which: number[]) => {
    const out = new Float32Array(which.length * width);
    which.forEach((r, k) => out.set(data.subarray(r * width, (r + 1) * width), k * width));
    return out;
  };

  for (const [name, c] of Object.entries(gen.cases)) {
    if (!c.text) continue;
    const feats = [];
    for (const f of c.images) feats.push(await imageRows(vis, m, modelDir, f, 'anyres_max_4'));
    const ids = c.images.length ? c.prompt_ids.filter((id) => id !== m.tokens.pad) : c.prompt_ids;
    const L = c.prompt_len_after_splice;
    const embeds = new Float32Array(L * H);
    let row = 0;
    let img = 0;
    for (const id of ids) {
      if (id === m.tokens.imagePlaceholder) {
        embeds.set(feats[img], row * H);
        row += feats[img++].length / H;
      } else embeds.set(embRow(id), row++ * H);
    }
    assert.equal(row, L, `${name}: spliced length`);
    const de = maxAbsDiff(stridedRows(embeds, L, H, gen.stride), readNpyF32(join(dir, 'text', `${name}.inputs_embeds.strided.npy`)).data);
    assert.ok(de <= TOL, `${name}: inputs_embeds max|Δ| ${de}`);

    const P = c.prefill_len;
    const prefill = await run(embeds.slice(0, P * H), 0, blockCausal(P, 0, c.block_size));
    const dh = maxAbsDiff(stridedRows(prefill.hidden, P, H, gen.stride), readNpyF32(join(dir, 'text', `${name}.prefill_hidden.strided.npy`)).data);
    assert.ok(dh <= TOL, `${name}: prefill hidden max|Δ| ${dh}`);
    const pl = await logitsOf(rowsOf(prefill.hidden, H, c.text.prefill_logits_rows));
    const dl = maxAbsDiff(vocabStrided(pl, t.vocabSize, gen.vocab_stride), readNpyF32(join(dir, 'text', `${name}.prefill_logits.vocab.npy`)).data);
    assert.ok(dl <= LOGIT_TOL, `${name}: prefill logits max|Δ| ${dl}`);

    const d0 = c.text.denoise0;
    const B = d0.positions[1] - d0.positions[0] + 1;
    const block = new Float32Array(B * H);
    d0.is_mask.forEach((masked, i) => block.set(masked ? embRow(m.tokens.mask) : embeds.subarray((d0.positions[0] + i) * H, (d0.positions[0] + i + 1) * H), i * H));
    const den = await run(block, d0.positions[0], new Float32Array(B * (d0.cache_len + B)), prefill);
    const dd = maxAbsDiff(den.hidden, readNpyF32(join(dir, 'text', `${name}.denoise0_hidden.npy`)).data);
    assert.ok(dd <= TOL, `${name}: denoise0 hidden max|Δ| ${dd}`);
    const dlg = maxAbsDiff(vocabStrided(await logitsOf(rowsOf(den.hidden, H, d0.logits_rows)), t.vocabSize, gen.vocab_stride), readNpyF32(join(dir, 'text', `${name}.denoise0_logits.vocab.npy`)).data);
    assert.ok(dlg <= LOGIT_TOL, `${name}: denoise0 logits max|Δ| ${dlg}`);
  }
  await Promise.all([vis.release(), dec.release(), head.release()]);
});

test('generated ids identical to the official code on every case, fused and unfused; unfused forward counts equal', async () => {
  const modelDir = await ensureTinySiglipModel('fp32');
  const engine = await createEngine({ modelDir, provider: 'cpu', threads: 1 });
  try {
    for (const [name, c] of Object.entries(gen.cases)) {
      for (const fusedCommit of [false, true]) {
        const r = await engine.generateIds({ promptIds: c.prompt_ids, images: siglipCaseImages(c), options: { ...siglipCaseOptions(c), fusedCommit } });
        assert.deepEqual(r.outputIds, c.output_ids, `${name} (${fusedCommit ? 'fused' : 'unfused'}): output ids`);
        if (!fusedCommit) {
          const { prefill, denoise, commit } = r.stats.forwards;
          assert.deepEqual({ prefill, denoise, commit }, c.forwards, `${name}: forward counts`);
        }
      }
    }
  } finally {
    await engine.dispose();
  }
});

test('ask: the qwen_2_5 prompt of the evaluation driver, and its pad handling for two images, give the official ids', async () => {
  const modelDir = await ensureTinySiglipModel('fp32');
  const engine = await createEngine({ modelDir, provider: 'cpu', threads: 1 });
  try {
    // Cases whose prompt the driver built from a plain question (c, j: one image anyres; g: two images, pad).
    for (const name of ['c_img5large_static_b8_s8', 'g_pair_pad_static_b8_s8', 'j_img3tiny_static_b8_s8_g48']) {
      const c = gen.cases[name];
      const k = c.gen_kwargs;
      const r = await engine.ask(
        { question: c.context, images: c.images.map((f) => ({ path: image(f) })), options: { maxNewTokens: k.gen_length, steps: k.steps, blockSize: c.block_size, prefixCache: false } },
      );
      assert.deepEqual(r.outputIds, c.output_ids, name);
    }
  } finally {
    await engine.dispose();
  }
});

test('fp16 and int4 conversions: vision drift measured against the official fp32 outputs, ids agreement reported', async (t) => {
  for (const [precision, bound] of [['fp16', 0.05], ['int4', 1.0]] as const) {
    const modelDir = await ensureTinySiglipModel(precision);
    const m = readManifest(modelDir) as SiglipManifest;
    const s = await ort.InferenceSession.create(join(modelDir, m.files.vision), { intraOpNumThreads: 1 });
    const p = await preprocessSiglip({ path: image('img2_tall_300x800.png') }, m, 'anyres_max_4');
    const { siglip, projected } = await visionRun(s, p.pixelValues, p.views.length);
    await s.release();
    const dSig = maxAbsDiff(diagonal(siglip, p.views.length, 27, m.vision.hiddenSize), readNpyF32(join(dir, 'vision', 'img2_tall_300x800.siglip.diag.npy')).data);
    const dProj = maxAbsDiff(diagonal(projected, p.views.length, 27, m.text.hiddenSize), readNpyF32(join(dir, 'vision', 'img2_tall_300x800.projector.diag.npy')).data);
    const engine = await createEngine({ modelDir, provider: 'cpu', threads: 1 });
    let same = 0;
    try {
      for (const c of Object.values(gen.cases)) {
        const k = c.gen_kwargs;
        const r = await engine.generateIds({
          promptIds: c.prompt_ids,
          images: c.images.map((f) => ({ path: image(f) })),
          options: { maxNewTokens: k.gen_length, steps: k.steps, strategy: k.remasking_strategy.endsWith('dynamic') ? 'dynamic' : 'static', blockSize: c.block_size, imageAspectRatio: c.multi_image_mode === 'driver_multi_image_pad' ? 'pad' : undefined },
        });
        if (JSON.stringify(r.outputIds) === JSON.stringify(c.output_ids)) same++;
      }
    } finally {
      await engine.dispose();
    }
    t.diagnostic(`${precision}: SigLIP max|Δ| ${dSig.toExponential(2)}, projector max|Δ| ${dProj.toExponential(2)}, output ids identical on ${same}/${Object.keys(gen.cases).length} cases`);
    assert.ok(dSig < bound && dProj < bound, `${precision} drifted too far: SigLIP ${dSig}, projector ${dProj}`);
  }
});
