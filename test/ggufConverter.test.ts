/**
 * The converter's GGUF output read back by an independent reader (test/helpers/ggufReader.ts): llama.cpp's qwen2
 * metadata and tensor names, tensor data equal to the checkpoint's (F32) or its half rounding (F16), the tokenizer
 * metadata, the vocabulary-less form, the manifest's `decoders`, and the CLI's precision rules. Loading in the real
 * library is in ggufLlama.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { convertCommand } from '../server/cli/commands/convert';
import { UsageError } from '../server/cli/command';
import { openCheckpoint } from '../server/converter/checkpoint';
import { convertCheckpoint } from '../server/converter/convert';
import { decoderPrecision } from '../server/converter/convertOptions';
import { qwen2TensorMap, writeQwen2Gguf } from '../server/converter/gguf/qwen2Gguf';
import { readGgufVocab } from '../server/converter/gguf/vocab';
import { f32ToF16Array, halfToFloat } from '../server/engine/half';
import type { ExecutionProvider } from '../server/engine/api';
import { LlamaUnavailableError, type LlamaDeviceInfo } from '../server/engine/backends/llamacpp/library';
import { manifestDecoders, onnxDecoderFiles, readManifest } from '../server/engine/manifest';
import { fastestDecoder } from '../server/lsp/decoderChoice';
import { readGguf, readGgufTensor } from './helpers/ggufReader';
import { randomSource, tinyText } from './helpers/tinyQwen2';
import { cacheDir, repoRoot } from './helpers/paths';
import { ensureTinyCheckpoint } from './helpers/tinyModel';

const out = join(cacheDir, 'gguf-converter');
let ckptDir: string;
const converted = new Map<string, string>();

/** Converts the golden tiny checkpoint once per precision, GGUF decoder only. */
async function ggufModel(type: 'fp32' | 'fp16'): Promise<string> {
  let dir = converted.get(type);
  if (!dir) {
    dir = join(out, `qwenvl-${type}`);
    await convertCheckpoint(ckptDir, dir, { ...decoderPrecision('gguf', type), decoder: 'gguf' });
    converted.set(type, dir);
  }
  return dir;
}

before(async () => {
  ckptDir = await ensureTinyCheckpoint();
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
});

after(() => rm(out, { recursive: true, force: true }));

test('the GGUF decoder parses back as llama.cpp qwen2: v3 header, hyper-parameters, tensor names and ggml shapes', async () => {
  const dir = await ggufModel('fp32');
  const m = readManifest(dir);
  assert.deepEqual(m.decoders, { gguf: { file: 'decoder.fp32.gguf', type: 'fp32' } });
  const f = readGguf(join(dir, 'decoder.fp32.gguf'));
  assert.equal(f.version, 3);
  const t = m.text;
  const expect: Record<string, unknown> = {
    'general.architecture': 'qwen2',
    'general.file_type': 0,
    'qwen2.block_count': t.numLayers,
    'qwen2.embedding_length': t.hiddenSize,
    'qwen2.feed_forward_length': t.intermediateSize,
    'qwen2.attention.head_count': t.numHeads,
    'qwen2.attention.head_count_kv': t.numKvHeads,
    'qwen2.context_length': 32768,
  };
  for (const [k, v] of Object.entries(expect)) assert.equal(f.meta.get(k), v, k);
  assert.equal(Math.fround(t.ropeTheta), f.meta.get('qwen2.rope.freq_base'));
  assert.equal(Math.fround(t.rmsNormEps), f.meta.get('qwen2.attention.layer_norm_rms_epsilon'));

  const names = f.tensors.map((x) => x.name);
  assert.equal(names.length, 3 + 12 * t.numLayers); // token_embd, output_norm, output (untied) + 12 per block
  for (const n of ['token_embd.weight', 'output_norm.weight', 'output.weight', 'blk.0.attn_q.bias', 'blk.1.attn_output.weight', 'blk.1.ffn_down.weight']) assert.ok(names.includes(n), n);
  // ggml shapes are the PyTorch ones reversed: token_embd is {n_embd, n_vocab}.
  assert.deepEqual(f.tensors.find((x) => x.name === 'token_embd.weight')?.ne, [t.hiddenSize, t.vocabSize]);
  assert.deepEqual(f.tensors.find((x) => x.name === 'blk.0.ffn_down.weight')?.ne, [t.intermediateSize, t.hiddenSize]);
  assert.ok(f.tensors.every((x) => x.type === 0 && x.offset % 32 === 0));
  // No ONNX decoder was asked for: none is written, and the ONNX runtime says how to get one.
  assert.ok(!existsSync(join(dir, 'decoder.onnx')) && existsSync(join(dir, 'vision.onnx')) && existsSync(join(dir, 'embeddings.bin')));
  assert.throws(() => onnxDecoderFiles(m), /no ONNX decoder.*--decoder onnx or both/);
});

test('F32 tensors are the checkpoint values; F16 matrices are their half rounding, norms and biases stay F32', async () => {
  const ckpt = await openCheckpoint(ckptDir);
  try {
    const f32 = readGguf(join(await ggufModel('fp32'), 'decoder.fp32.gguf'));
    const f16 = readGguf(join(await ggufModel('fp16'), 'decoder.fp16.gguf'));
    assert.equal(f16.meta.get('general.file_type'), 1);
    for (const m of qwen2TensorMap(ckpt.config.text)) {
      const want = await ckpt.readF32(m.source, m.shape);
      assert.deepEqual(readGgufTensor(f32, m.gguf), want, m.gguf);
      const info = f16.tensors.find((x) => x.name === m.gguf);
      assert.equal(info?.type, m.shape.length === 2 ? 1 : 0, `${m.gguf} type`);
      const half = new Float32Array(want.length);
      halfToFloat(f32ToF16Array(want), half);
      assert.deepEqual(readGgufTensor(f16, m.gguf), m.shape.length === 2 ? half : want, m.gguf);
    }
  } finally {
    await ckpt.close();
  }
});

test('the tokenizer metadata: Qwen2.5 tokens, types and merges; ids past the tokenizer (the mask row) are unused pads', async () => {
  const dir = await ggufModel('fp32');
  const f = readGguf(join(dir, 'decoder.fp32.gguf'));
  const m = readManifest(dir);
  const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: unknown[] } };
  assert.equal(f.meta.get('tokenizer.ggml.model'), 'gpt2');
  assert.equal(f.meta.get('tokenizer.ggml.pre'), 'qwen2');
  const tokens = f.meta.get('tokenizer.ggml.tokens') as string[];
  const types = f.meta.get('tokenizer.ggml.token_type') as number[];
  assert.equal(tokens.length, m.text.vocabSize);
  assert.equal(types.length, m.text.vocabSize);
  assert.equal(tokens[tok.model.vocab['Hello']], 'Hello');
  assert.equal(types[tok.model.vocab['Hello']], 1);
  assert.equal(tokens[151645], '<|im_end|>');
  assert.equal(types[151645], 3); // control
  assert.equal(tokens[m.tokens.mask], `[PAD${m.tokens.mask}]`);
  assert.equal(types[m.tokens.mask], 5); // unused
  assert.equal((f.meta.get('tokenizer.ggml.merges') as string[]).length, tok.model.merges.length);
  assert.equal(f.meta.get('tokenizer.ggml.eos_token_id'), m.tokens.eos);
  assert.equal(f.meta.get('tokenizer.ggml.padding_token_id'), m.tokens.pad);
  assert.equal(f.meta.get('tokenizer.ggml.add_bos_token'), false);
});

test('without a tokenizer the file declares no vocabulary ("none") and its size', async () => {
  const path = join(out, 'novocab.gguf');
  const text = tinyText();
  await writeQwen2Gguf(randomSource(), path, { type: 'fp32', name: 'novocab', text, tokens: { eos: 1, pad: 0 } });
  const f = readGguf(path);
  assert.equal(f.meta.get('tokenizer.ggml.model'), 'none');
  assert.equal(f.meta.get('qwen2.vocab_size'), text.vocabSize);
  assert.ok(!f.meta.has('tokenizer.ggml.tokens'));
});

test('a tokenizer whose pre-tokenizer is not Qwen2\'s is reported, not written wrongly', async () => {
  const path = join(out, 'other-tokenizer.json');
  const json = JSON.parse(readFileSync(join(repoRoot, 'models', 'default', 'tokenizer.json'), 'utf8')) as { pre_tokenizer: { pretokenizers: { pattern?: { Regex: string } }[] } };
  json.pre_tokenizer.pretokenizers[0].pattern = { Regex: '\\s+' };
  writeFileSync(path, JSON.stringify(json));
  assert.deepEqual(await readGgufVocab(path, 465), { unsupported: 'its pre-tokenizer is not the Qwen2 one' });
  const ok = await readGgufVocab(join(repoRoot, 'models', 'default', 'tokenizer.json'), 465);
  assert.ok(!('unsupported' in ok) && ok.tokens.length === 465);
});

test('a failed GGUF write leaves no file behind', async () => {
  const path = join(out, 'failed.gguf');
  const src = randomSource();
  const failing = { readF32: (name: string, shape?: number[]) => (name.includes('layers.1.') ? Promise.reject(new Error('disk gone')) : src.readF32(name, shape)) };
  await assert.rejects(writeQwen2Gguf(failing, path, { type: 'fp16', name: 'x', text: tinyText(), tokens: { eos: 1, pad: 0 } }), /disk gone/);
  assert.ok(!existsSync(path));
});

test('manifests: decoders are validated; a manifest from before the field reads as ONNX', async () => {
  const old = readManifest(join(repoRoot, 'models', 'default'));
  assert.deepEqual(manifestDecoders(old), { onnx: { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx' } });
  const dir = join(out, 'bad-manifest');
  await mkdir(dir, { recursive: true });
  const base = JSON.parse(readFileSync(join(repoRoot, 'models', 'default', 'manifest.json'), 'utf8')) as Record<string, unknown>;
  const write = (decoders: unknown) => writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...base, decoders }));
  write({ gguf: { file: 'd.gguf', type: 'q3_k' } });
  assert.throws(() => readManifest(dir), /decoders\.gguf\.type "q3_k" is not one of fp32, fp16, q8_0, q4_0, q4_k_m/);
  write({});
  assert.throws(() => readManifest(dir), /names neither an onnx nor a gguf decoder/);
  write({ onnx: { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx' }, gguf: { file: 'decoder.q4_0.gguf', type: 'q4_0' } });
  assert.deepEqual(onnxDecoderFiles(readManifest(dir)), { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx' });
});

test('convert --decoder/--precision: each decoder takes its own precisions', async () => {
  assert.deepEqual(decoderPrecision('gguf', 'q4_k_m'), { precision: 'int4', ggufType: 'q4_k_m' });
  assert.deepEqual(decoderPrecision('both', 'fp16'), { precision: 'fp16', ggufType: 'fp16' });
  assert.deepEqual(decoderPrecision('onnx', 'int4'), { precision: 'int4' });
  const run = (args: string[]) => convertCommand.run([ckptDir, join(out, 'never'), ...args]);
  await assert.rejects(run(['--decoder', 'gguf', '--precision', 'int4']), (e: Error) => e instanceof UsageError && /q4_0 or q4_k_m/.test(e.message));
  await assert.rejects(run(['--decoder', 'onnx', '--precision', 'q8_0']), (e: Error) => e instanceof UsageError && /fp32, fp16, int4/.test(e.message));
  await assert.rejects(run(['--decoder', 'llama']), (e: Error) => e instanceof UsageError && /--decoder must be one of onnx, gguf, both/.test(e.message));
  assert.ok(!existsSync(join(out, 'never')));
});

test('the converter has no import cycle (convert.ts, convertSiglip.ts and textSide.ts included)', () => {
  const root = join(repoRoot, 'server', 'converter');
  const files = new Map<string, string[]>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const src = readFileSync(p, 'utf8');
        // Type-only imports vanish at run time but still tie the modules together: count them too.
        const deps = [...src.matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)].map((x) => resolve(dirname(p), x[1]) + '.ts').filter((q) => q.startsWith(root));
        files.set(p, deps);
      }
    }
  };
  walk(root);
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    assert.notEqual(state.get(f), 'open', `import cycle: ${[...path, f].map((x) => x.slice(root.length + 1)).join(' → ')}`);
    state.set(f, 'open');
    for (const d of files.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files.keys()) visit(f, []);
});

test('Download Model\'s decoder: F16 GGUF on a hardware GPU, Q4_K_M on the CPU (a software GPU is no GPU), ONNX fp16 without llama.cpp', () => {
  const dev = (type: LlamaDeviceInfo['type'], name: string, description: string): LlamaDeviceInfo => ({ index: 0, name, description, type, handle: null });
  const cpu = dev('cpu', 'CPU', 'Intel Xeon');
  assert.deepEqual(pick('auto', [cpu, dev('gpu', 'Vulkan0', 'NVIDIA H100')]), { decoder: 'gguf', precision: 'fp16' });
  assert.deepEqual(pick('auto', [cpu, dev('gpu', 'Vulkan0', 'llvmpipe (LLVM 15.0.7, 256 bits)')]), { decoder: 'gguf', precision: 'q4_k_m' });
  assert.deepEqual(pick('cpu', [cpu, dev('gpu', 'CUDA0', 'NVIDIA H100')]), { decoder: 'gguf', precision: 'q4_k_m' });
  const none = fastestDecoder('auto', undefined, () => {
    throw new LlamaUnavailableError('no prebuilt llama.cpp library exists for plan9-mips');
  });
  assert.deepEqual({ decoder: none.decoder, precision: none.precision }, { decoder: 'onnx', precision: 'fp16' });
  assert.match(none.reason, /llama\.cpp is not available \(no prebuilt llama\.cpp library exists for plan9-mips\)/);
});

function pick(provider: ExecutionProvider, devices: LlamaDeviceInfo[]): { decoder: string; precision: string } {
  const c = fastestDecoder(provider, undefined, () => devices);
  return { decoder: c.decoder, precision: c.precision };
}
