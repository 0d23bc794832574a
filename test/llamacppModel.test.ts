/**
 * The llama.cpp decoder backend on the real library with an F32 GGUF of the golden tiny checkpoint: prefill and
 * first denoising step logits against the official fp32 outputs, attention patterns (groups of an open pass equal
 * separate passes, a chunked prefill equals one pass), the cache's bookkeeping, and batches refused before they
 * reach the library.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { blockCausal, open } from '../server/engine/attention';
import { LlamaModel } from '../server/engine/backends/llamacpp/model';
import { EmbeddingTable } from '../server/engine/embeddings';
import { readManifest } from '../server/engine/manifest';
import type { KvCache } from '../server/engine/kvCache';
import { ensureTinyGguf } from './helpers/tinyGguf';
import { maxAbsDiff, readNpyF32 } from './helpers/npy';
import { fixturesDir, goldenDir, repoRoot } from './helpers/paths';
import { ensureTinySiglipModel } from './helpers/tinySiglipModel';
import { ensureTinyModel } from './helpers/tinyModel';

const TOL = 5e-4;

interface TextCase {
  prefill_len: number;
  prefill_logits_rows: number[];
  denoise0: { positions: [number, number]; cache_len: number };
}
const textFixture = JSON.parse(readFileSync(join(goldenDir, 'text', 'text.json'), 'utf8')) as { logit_stride: number; mask_id: number; cases: Record<string, TextCase> };

let model: LlamaModel;
let cache: KvCache;
let emb: EmbeddingTable;
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

before(async () => {
  const dir = await ensureTinyModel('fp32');
  const m = readManifest(dir);
  emb = new EmbeddingTable(join(dir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
  model = await LlamaModel.load(await ensureTinyGguf('qwenvl'), emb, { provider: 'cpu', threads: 1, kvType: 'f32', contextLength: 1024, microBatch: 64, sequences: 16 });
  cache = model.createCache();
});

after(async () => {
  await model?.release();
  emb?.close();
});

function strided(logits: Float32Array, vocab: number, stride: number): Float32Array {
  const rows = logits.length / vocab;
  const n = Math.ceil(vocab / stride);
  const out = new Float32Array(rows * n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) out[i * n + j] = logits[i * vocab + j * stride];
  return out;
}

async function logitsOf(embeds: Float32Array, positions: number[], pattern: Parameters<LlamaModel['decode']>[2], commitRows: number, outputRows: number[]): Promise<Float32Array> {
  const hidden = await model.decode(embeds, positions, pattern, cache, { commitRows, outputRows });
  return (await model.head(hidden!, true)).logits!;
}

test('prefill (block-causal, one batch) and the first denoising step match the official fp32 logits within 5e-4', async (t) => {
  const H = model.hiddenSize;
  const V = model.vocabSize;
  const stride = textFixture.logit_stride;
  const worst = { prefill: 0, denoise: 0 };
  for (const [name, c] of Object.entries(textFixture.cases)) {
    cache.truncate(0);
    const embeds = readNpyF32(join(goldenDir, 'text', `${name}.inputs_embeds.npy`)).data;
    const P = c.prefill_len;
    const pre = await logitsOf(embeds.slice(0, P * H), range(0, P), blockCausal(8), P, c.prefill_logits_rows);
    worst.prefill = Math.max(worst.prefill, maxAbsDiff(strided(pre, V, stride), readNpyF32(join(goldenDir, 'text', `${name}.prefill_logits_strided.npy`)).data));
    assert.equal(cache.length, P);
    assert.equal(model.cachedPositions(), P);
    const [s0, s1] = c.denoise0.positions;
    const B = s1 - s0 + 1;
    const block = new Float32Array(B * H);
    const mask = new Float32Array(H);
    model.embedRow(textFixture.mask_id, mask, 0);
    for (let i = 0; i < B; i++) block.set(s0 + i < embeds.length / H ? embeds.subarray((s0 + i) * H, (s0 + i + 1) * H) : mask, i * H);
    const den = await logitsOf(block, range(s0, s0 + B), open(0, B), 0, range(0, B));
    worst.denoise = Math.max(worst.denoise, maxAbsDiff(strided(den, V, stride), readNpyF32(join(goldenDir, 'text', `${name}.denoise0_logits_strided.npy`)).data));
    // A denoising pass leaves the cache as it was.
    assert.equal(cache.length, P);
    assert.equal(model.cachedPositions(), P);
  }
  t.diagnostic(`max|Δ| vs official fp32: ${JSON.stringify(worst)}`);
  assert.ok(worst.prefill <= TOL, `prefill logits max|Δ| ${worst.prefill}`);
  assert.ok(worst.denoise <= TOL, `denoise logits max|Δ| ${worst.denoise}`);
});

test('SigLIP model (Qwen2.5 text side), text case: prefill and first denoising step logits within 5e-4 of the official fp32', async (t) => {
  const dir = await ensureTinySiglipModel('fp32');
  const m = readManifest(dir);
  const table = new EmbeddingTable(join(dir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype);
  const sig = await LlamaModel.load(await ensureTinyGguf('siglip'), table, { provider: 'cpu', threads: 1, kvType: 'f32', contextLength: 1024, microBatch: 64, sequences: 16 });
  const gdir = join(fixturesDir, 'golden-siglip');
  const gen = JSON.parse(readFileSync(join(gdir, 'generate.json'), 'utf8')) as {
    vocab_stride: number;
    cases: Record<string, { prompt_ids: number[]; images: string[]; prefill_len: number; text?: { prefill_logits_rows: number[]; denoise0: { positions: [number, number]; is_mask: boolean[]; logits_rows: number[] } } }>;
  };
  try {
    const sigCache = sig.createCache();
    const H = sig.hiddenSize;
    const V = sig.vocabSize;
    let checked = 0;
    for (const [name, c] of Object.entries(gen.cases)) {
      if (!c.text || c.images.length) continue;
      const embeds = new Float32Array(c.prompt_ids.length * H);
      c.prompt_ids.forEach((id, i) => sig.embedRow(id, embeds, i * H));
      const P = c.prefill_len;
      const pre = await sig.decode(embeds.slice(0, P * H), range(0, P), blockCausal(8), sigCache, { commitRows: P, outputRows: c.text.prefill_logits_rows });
      const dl = maxAbsDiff(strided((await sig.head(pre!, true)).logits!, V, gen.vocab_stride), readNpyF32(join(gdir, 'text', `${name}.prefill_logits.vocab.npy`)).data);
      const d0 = c.text.denoise0;
      const B = d0.positions[1] - d0.positions[0] + 1;
      const block = new Float32Array(B * H);
      d0.is_mask.forEach((masked, i) => (masked ? sig.embedRow(m.tokens.mask, block, i * H) : block.set(embeds.subarray((d0.positions[0] + i) * H, (d0.positions[0] + i + 1) * H), i * H)));
      const den = await sig.decode(block, range(d0.positions[0], d0.positions[0] + B), open(0, B), sigCache, { commitRows: 0, outputRows: d0.logits_rows });
      const dd = maxAbsDiff(strided((await sig.head(den!, true)).logits!, V, gen.vocab_stride), readNpyF32(join(gdir, 'text', `${name}.denoise0_logits.vocab.npy`)).data);
      t.diagnostic(`${name}: prefill max|Δ| ${dl}, denoise0 max|Δ| ${dd}`);
      assert.ok(dl <= TOL && dd <= TOL, `${name}: prefill ${dl}, denoise0 ${dd}`);
      checked++;
    }
    assert.ok(checked > 0);
  } finally {
    await sig.release();
    table.close();
  }
});

test('an open pass with shared rows and 3 groups equals a commit pass followed by each group alone', async () => {
  const H = model.hiddenSize;
  const rows = (ids: number[]) => {
    const x = new Float32Array(ids.length * H);
    ids.forEach((id, i) => model.embedRow(id, x, i * H));
    return x;
  };
  const prompt = rows(range(100, 116));
  const shared = rows([7, 8, 9, 10, 11, 12, 13, 14]);
  const groups = [rows([20, 21, 22, 23, 24, 25, 26, 27]), rows([30, 31, 32, 33, 34, 35, 36, 37]), rows(range(40, 48))];
  cache.truncate(0);
  await model.decode(prompt, range(0, 16), blockCausal(8), cache, { commitRows: 16, outputRows: [] });
  const all = new Float32Array(32 * H);
  all.set(shared, 0);
  groups.forEach((g, i) => all.set(g, (8 + i * 8) * H));
  const positions = [...range(16, 24), ...range(24, 32), ...range(24, 32), ...range(24, 32)];
  const fused = await logitsOf(all, positions, open(8, 8, 8, 8), 8, range(0, 32));
  assert.equal(cache.length, 24);
  assert.equal(model.cachedPositions(), 24);
  const V = model.vocabSize;
  for (let g = 0; g < 3; g++) {
    const alone = await logitsOf(groups[g], range(24, 32), open(0, 8), 0, range(0, 8));
    const part = fused.subarray((8 + g * 8) * V, (16 + g * 8) * V);
    // Float rounding of another batch shape only (logits here are ≈ 12 in scale); a leak between groups is O(1).
    assert.ok(maxAbsDiff(alone, part) < 1e-4, `group ${g}: max|Δ| ${maxAbsDiff(alone, part)}`);
  }
  // The shared rows are what a plain commit pass computes.
  cache.truncate(16);
  const commit = await logitsOf(shared, range(16, 24), open(8), 8, range(0, 8));
  assert.ok(maxAbsDiff(commit, fused.subarray(0, 8 * V)) < 1e-4);
});

test('a prefill larger than the micro-batch is split at block boundaries with the same result, and output rows only cost what is asked', async () => {
  const H = model.hiddenSize;
  const n = 150; // > the micro-batch of 64
  const x = new Float32Array(n * H);
  for (let i = 0; i < n; i++) model.embedRow(200 + i, x, i * H);
  cache.truncate(0);
  const chunked = await logitsOf(x, range(0, n), blockCausal(8), n, [0, 63, 64, 149]);
  assert.equal(cache.length, n);
  // The same rows computed without a cache at all (a full recompute of the prefix up to each row's block end).
  const V = model.vocabSize;
  const lastRow = await model.decode(x.subarray(0, 72 * H), range(0, 72), blockCausal(8), null, { commitRows: 0, outputRows: [64] });
  const ref = (await model.head(lastRow!, true)).logits!;
  assert.ok(maxAbsDiff(ref, chunked.subarray(2 * V, 3 * V)) < 1e-4);
  // A pass without a cache emptied the context: the cache says so.
  assert.equal(cache.length, 0);
});

test('bad batches are refused with a clear error before they reach the library, and the model still works', async () => {
  const H = model.hiddenSize;
  const x = (n: number) => {
    const a = new Float32Array(n * H);
    for (let i = 0; i < n; i++) model.embedRow(5, a, i * H);
    return a;
  };
  cache.truncate(0);
  await model.decode(x(8), range(0, 8), blockCausal(8), cache, { commitRows: 8, outputRows: [] });
  const bad: [string, () => Promise<unknown>, RegExp][] = [
    ['an open pass above the micro-batch', () => model.decode(x(65), range(8, 73), open(0, 65), cache, { commitRows: 0, outputRows: [] }), /open pass of 65 rows exceeds the micro-batch of 64/],
    ['positions not continuing the cache', () => model.decode(x(8), range(9, 17), open(0, 8), cache, { commitRows: 0, outputRows: [] }), /consecutive positions from 8/],
    ['descending positions', () => model.decode(x(2), [9, 8], open(0, 2), cache, { commitRows: 0, outputRows: [] }), /consecutive positions/],
    ['too few embedding values', () => model.decode(x(1), range(8, 10), open(0, 2), cache, { commitRows: 0, outputRows: [] }), /64 embedding values for 2 rows/],
    ['too many groups', () => model.decode(x(17), range(8, 25), open(0, ...Array(17).fill(1)), cache, { commitRows: 0, outputRows: [] }), /17 groups need 17 sequences; the context has 16/],
    ['output rows out of range', () => model.decode(x(2), range(8, 10), open(0, 2), cache, { commitRows: 0, outputRows: [2] }), /output rows \[2\]/],
    ['positions beyond the context', () => model.decode(x(8), range(1020, 1028), blockCausal(8), null, { commitRows: 0, outputRows: [] }), /consecutive positions from 0/],
  ];
  for (const [what, run, message] of bad) {
    await assert.rejects(run, (err: Error & { kind?: string }) => err.kind === 'model' && /refused a decoder pass before it reached the library/.test(err.message) && message.test(err.message), what);
    assert.equal(cache.length, 8, what);
    assert.equal(model.cachedPositions(), 8, what);
  }
  const ok = await model.decode(x(8), range(8, 16), open(0, 8), cache, { commitRows: 0, outputRows: [7] });
  assert.equal((await model.head(ok!, false)).ids.length, 1);
});

test('a pass the library would abort on (non-causal rows above its micro-batch) is refused in a child process that survives', async () => {
  const dir = await ensureTinyModel('fp32');
  const gguf = await ensureTinyGguf('qwenvl');
  // Run where an abort would show as a signal instead of killing the test runner.
  const code = `
    const { LlamaModel } = require(${JSON.stringify(join(repoRoot, 'out', 'server', 'engine', 'backends', 'llamacpp', 'model.js'))});
    const { EmbeddingTable } = require(${JSON.stringify(join(repoRoot, 'out', 'server', 'engine', 'embeddings.js'))});
    const { open } = require(${JSON.stringify(join(repoRoot, 'out', 'server', 'engine', 'attention.js'))});
    (async () => {
      const m = JSON.parse(require('fs').readFileSync(${JSON.stringify(join(dir, 'manifest.json'))}, 'utf8'));
      const emb = new EmbeddingTable(require('path').join(${JSON.stringify(dir)}, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype);
      const model = await LlamaModel.load(${JSON.stringify(gguf)}, emb, { provider: 'cpu', threads: 1, microBatch: 16 });
      const cache = model.createCache();
      try {
        await model.decode(new Float32Array(17 * model.hiddenSize), Array.from({ length: 17 }, (_, i) => i), open(0, 17), cache, { commitRows: 0, outputRows: [] });
        console.log('NOT REFUSED');
      } catch (err) {
        console.log('REFUSED: ' + err.message);
      }
      await model.release();
    })();`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000, env: { ...process.env } });
  assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr.slice(-500)}`);
  assert.equal(r.status, 0, r.stderr.slice(-500));
  assert.match(r.stdout, /REFUSED: .*open pass of 17 rows exceeds the micro-batch of 16/);
});

test('reserve grows the context to what a run needs (the next 1024 cells), empties the cache, and the pass it refused before then runs', async () => {
  const H = model.hiddenSize;
  assert.equal(model.passLimits.cells, 1024);
  assert.equal(await model.reserve(1000), false, 'a run that fits replaces nothing');
  const n = 1100;
  const x = new Float32Array(n * H);
  for (let i = 0; i < n; i++) model.embedRow(1 + ((i * 7) % 400), x, i * H);
  cache.truncate(0);
  const before = await logitsOf(x.subarray(0, 72 * H), range(0, 72), blockCausal(8), 72, [64]);
  await assert.rejects(model.decode(x, range(0, n), blockCausal(8), null, { commitRows: 0, outputRows: [] }), /refused a decoder pass before it reached the library/);
  assert.equal(await model.reserve(n + 8), true);
  assert.equal(model.passLimits.cells, 2048);
  assert.equal(cache.length, 0, 'the new context starts empty, and the cache says so');
  const after = await logitsOf(x, range(0, n), blockCausal(8), n, [64, n - 1]);
  assert.equal(cache.length, n);
  assert.ok(maxAbsDiff(before, after.subarray(0, model.vocabSize)) < 1e-4);
  assert.equal(await model.reserve(2048), false);
  await assert.rejects(model.reserve(model.maxCells + 1), /the model's context holds/);
});

test('releasing one model keeps the library log going through our sink for the models still open (no raw library lines)', async () => {
  const lines: string[] = [];
  const other = await LlamaModel.load(await ensureTinyGguf('qwenvl'), emb, { provider: 'cpu', threads: 1, kvType: 'f32', contextLength: 1024, log: (_level, text) => void lines.push(text) });
  await other.release();
  lines.length = 0;
  // A new context: the library logs its buffers.
  assert.equal(await model.reserve(model.passLimits.cells + 1), true);
  assert.ok(lines.some((l) => /compute buffer/.test(l)), `the library's lines reach the sink: ${lines.length} lines`);
});
