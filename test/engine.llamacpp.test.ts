/**
 * The engine on the llama.cpp decoder backend (real library, F32 GGUF of the golden tiny checkpoints): every visible
 * official generation case gives the official ids, fused and unfused, with the official forward counts unfused; and
 * every way llama.cpp can be unavailable leaves ONNX Runtime running with the reason in EngineInfo.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Engine } from '../server/engine/api';
import { findLibraryDir } from '../server/engine/backends/llamacpp/library';
import { LLAMA_LIBRARY_VERSION } from '../server/engine/backends/llamacpp/pinned';
import { convertCheckpoint } from '../server/converter/convert';
import { decoderPrecision } from '../server/converter/convertOptions';
import { createEngine } from '../server/engine/engine';
import { caseImagePath, caseOptions, goldenCases, siglipCaseImages, siglipCaseOptions, siglipGoldenCases } from './helpers/goldenCases';
import { cacheDir, repoRoot } from './helpers/paths';
import { ensureTinyLlamaModel } from './helpers/tinyLlamaModel';
import { ensureTinyCheckpoint, ensureTinyModel } from './helpers/tinyModel';

let engine: Engine;

before(async () => {
  engine = await createEngine({ modelDir: await ensureTinyLlamaModel('qwenvl'), provider: 'cpu', threads: 1, backend: 'llama.cpp' });
});

after(async () => {
  await engine?.dispose();
});

test('the engine runs the decoder on llama.cpp and says so', () => {
  assert.equal(engine.info.backend, 'llama.cpp');
  assert.equal(engine.info.backendReason, 'llama.cpp requested: llama.cpp, cpu requested');
  assert.equal(engine.info.provider, 'cpu');
});

for (const [name, c] of Object.entries(goldenCases())) {
  for (const fused of [false, true]) {
    test(`QwenVL ${name} on llama.cpp (${fused ? 'fused commit' : 'unfused, official call pattern'})`, async () => {
      const images = caseImagePath(c).map((path) => ({ path }));
      const r = await engine.generateIds({ promptIds: c.prompt_ids, images, options: { ...caseOptions(c), fusedCommit: fused, prefixCache: false } });
      assert.deepEqual(r.outputIds, c.output_ids);
      const f = r.stats.forwards;
      if (!fused) assert.deepEqual({ prefill: f.prefill, denoise: f.denoise, commit: f.commit }, c.forwards);
      else {
        assert.equal(f.denoise, c.forwards.denoise);
        assert.equal(f.commit, 0);
        assert.equal(f.fusedCommits, c.forwards.commit - 1);
      }
    });
  }
}

test('prompt-prefix reuse on llama.cpp: a second identical prompt reuses the cached blocks and gives the same ids', async () => {
  const c = Object.values(goldenCases())[0];
  const images = caseImagePath(c).map((path) => ({ path }));
  const first = await engine.generateIds({ promptIds: c.prompt_ids, images, options: caseOptions(c) });
  const second = await engine.generateIds({ promptIds: c.prompt_ids, images, options: caseOptions(c) });
  assert.deepEqual(second.outputIds, first.outputIds);
  assert.deepEqual(second.outputIds, c.output_ids);
  if (first.stats.forwards.prefill > 0) assert.ok((second.stats.cache.prefixReusedTokens ?? 0) > 0);
});

test('a prompt longer than the first context: the context grows, the ids equal ONNX Runtime\'s, and the next identical prompt reuses its prefix', async () => {
  const c = textCase();
  const promptIds = Array.from({ length: 1100 }, (_, i) => c.prompt_ids[i % c.prompt_ids.length]);
  const options = { ...caseOptions(c), maxNewTokens: 16 };
  const onnx = await createEngine({ modelDir: await ensureTinyLlamaModel('qwenvl'), provider: 'cpu', threads: 1, backend: 'onnx' });
  try {
    const ref = await onnx.generateIds({ promptIds, images: [], options });
    const first = await engine.generateIds({ promptIds, images: [], options });
    assert.deepEqual(first.outputIds, ref.outputIds);
    const again = await engine.generateIds({ promptIds, images: [], options });
    assert.deepEqual(again.outputIds, ref.outputIds);
    assert.ok((again.stats.cache.prefixReusedTokens ?? 0) >= 1096);
  } finally {
    await onnx.dispose();
  }
});

test('one llama.cpp build per process: after the main thread loaded the library as the converter does, CPU engines started one after another do not abort it', () => {
  // The converter's quantiser and the fastest-decoder check load the library with no CPU preference (a GPU package
  // where one is installed); a CPU engine alone would prefer the CPU-only package: a second copy of ggml, and the
  // second engine worker to load it aborted the process (GGML_ASSERT in ggml's static init).
  const c = textCase();
  const out = join(repoRoot, 'out', 'server', 'engine');
  const script = `
    const { loadLlamaLibrary } = require(${JSON.stringify(join(out, 'backends', 'llamacpp', 'library.js'))});
    const { createEngine } = require(${JSON.stringify(join(out, 'engine.js'))});
    (async () => {
      loadLlamaLibrary({});
      for (let i = 0; i < 3; i++) {
        const e = await createEngine({ modelDir: process.argv[1], provider: 'cpu', threads: 1, backend: 'llama.cpp' });
        if (e.info.backend !== 'llama.cpp') throw new Error(e.info.backendReason);
        const r = await e.generateIds({ promptIds: ${JSON.stringify(c.prompt_ids)}, images: [], options: { maxNewTokens: 8, verifySteps: 1 } });
        process.stdout.write(JSON.stringify(r.outputIds) + '\\n');
        await e.dispose();
      }
    })().catch((err) => { console.error(err); process.exit(1); });`;
  return ensureTinyLlamaModel('qwenvl').then((dir) => {
    const r = spawnSync(process.execPath, ['-e', script, dir], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, DIFFUSIONVL_LLAMA_LOADED_DIR: '' } });
    assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stderr.slice(-400)}`);
    assert.equal(r.status, 0, r.stderr.slice(-400));
    const runs = r.stdout.trim().split('\n');
    assert.equal(runs.length, 3);
    assert.ok(runs.every((l) => l === runs[0]), 'the same ids each time');
  });
});

test('SigLIP: every official case on llama.cpp gives the official ids, fused and unfused; unfused forward counts equal', async () => {
  const e = await createEngine({ modelDir: await ensureTinyLlamaModel('siglip'), provider: 'cpu', threads: 1, backend: 'llama.cpp' });
  try {
    assert.equal(e.info.backend, 'llama.cpp');
    for (const [name, c] of Object.entries(siglipGoldenCases())) {
      for (const fusedCommit of [false, true]) {
        const r = await e.generateIds({ promptIds: c.prompt_ids, images: siglipCaseImages(c), options: { ...siglipCaseOptions(c), fusedCommit } });
        assert.deepEqual(r.outputIds, c.output_ids, `${name} (${fusedCommit ? 'fused' : 'unfused'}): output ids`);
        if (!fusedCommit) {
          const { prefill, denoise, commit } = r.stats.forwards;
          assert.deepEqual({ prefill, denoise, commit }, c.forwards, `${name}: forward counts`);
        }
      }
    }
  } finally {
    await e.dispose();
  }
});

const textCase = () => Object.values(goldenCases()).find((c) => !c.image)!;

/** Starts an engine in a child process (an abort there fails the test, not the runner) and returns its info and ids. */
function engineInChild(modelDir: string, env: Record<string, string>): { status: number | null; signal: string | null; out: { backend: string; backendReason: string; ids: number[] } | null; stderr: string } {
  const c = textCase();
  const code = `
    const { createEngine } = require(${JSON.stringify(join(repoRoot, 'out', 'server', 'engine', 'engine.js'))});
    (async () => {
      const e = await createEngine({ modelDir: ${JSON.stringify(modelDir)}, provider: 'cpu', threads: 1, backend: 'llama.cpp' });
      const r = await e.generateIds({ promptIds: ${JSON.stringify(c.prompt_ids)}, images: [], options: ${JSON.stringify(caseOptions(c))} });
      process.stdout.write(JSON.stringify({ backend: e.info.backend, backendReason: e.info.backendReason, ids: r.outputIds }));
      await e.dispose();
    })();`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  let out = null;
  try {
    out = JSON.parse(r.stdout) as { backend: string; backendReason: string; ids: number[] };
  } catch {
    out = null;
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr };
}

test('a missing llama.cpp library: ONNX Runtime runs the decoder and the status says why', { skip: !textCase() && 'needs a text-only case' }, async () => {
  const empty = join(cacheDir, 'llama-missing');
  mkdirSync(empty, { recursive: true });
  const r = engineInChild(await ensureTinyLlamaModel('qwenvl'), { DIFFUSIONVL_LLAMA_LIB_DIR: empty });
  assert.equal(r.signal, null, r.stderr.slice(-400));
  assert.equal(r.status, 0, r.stderr.slice(-400));
  assert.equal(r.out?.backend, 'onnx');
  assert.equal(r.out?.backendReason, `llama.cpp unavailable: the llama.cpp library folder ${empty} has no ggml-base library; fell back to ONNX Runtime`);
});

test('another build of the library: refused at load, ONNX Runtime runs the decoder, the status names both versions', { skip: process.platform !== 'linux' && 'patches a Linux .so' }, async () => {
  const dir = join(cacheDir, 'llama-wrong-version-engine');
  rmSync(dir, { recursive: true, force: true });
  cpSync(findLibraryDir(true), dir, { recursive: true });
  const lib = readdirSync(dir).find((n) => /^libllama\..*so$/.test(n))!;
  const bytes = readFileSync(join(dir, lib));
  Buffer.from('0.3.9-dev\0').copy(bytes, bytes.indexOf(Buffer.from(`${LLAMA_LIBRARY_VERSION}-dev\0`)));
  writeFileSync(join(dir, lib), bytes);
  const r = engineInChild(await ensureTinyLlamaModel('qwenvl'), { DIFFUSIONVL_LLAMA_LIB_DIR: dir });
  assert.equal(r.signal, null, r.stderr.slice(-400));
  assert.equal(r.status, 0, r.stderr.slice(-400));
  assert.equal(r.out?.backend, 'onnx');
  assert.match(r.out?.backendReason ?? '', /^llama\.cpp unavailable: the llama\.cpp library in .* is version 0\.3\.9-dev \(ggml 0\.23\.0\); this build of DiffusionVL needs 0\.4\.0 .*; fell back to ONNX Runtime$/);
  assert.deepEqual(r.out?.ids, textCase().output_ids);
});

test('CLI `generate --backend llama.cpp --json` in its own process: the official ids and counts, and "backend"', async () => {
  const c = textCase();
  const cli = join(repoRoot, 'out', 'server', 'cli', 'main.js');
  const o = caseOptions(c);
  const args = ['generate', '--model', await ensureTinyLlamaModel('qwenvl'), '--prompt-ids', JSON.stringify(c.prompt_ids), '--gen-length', String(o.maxNewTokens), '--steps', String(o.steps), '--strategy', String(o.strategy), '--threshold', String(o.threshold), '--provider', 'cpu', '--threads', '1', '--no-fused-commit', '--backend', 'llama.cpp', '--json'];
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  // The contract's keys come first and in this order; later keys are only ever added (see generate.ts).
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(out).slice(0, 3), ['output_ids', 'forwards', 'backend']);
  assert.deepEqual({ output_ids: out.output_ids, forwards: out.forwards, backend: out.backend }, { output_ids: c.output_ids, forwards: c.forwards, backend: 'llama.cpp' });
  assert.equal(out.verify_steps, 1);
  const bad = spawnSync(process.execPath, [cli, ...args.slice(0, -3), '--backend', 'tensorrt', '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--backend must be one of auto, onnx, llama\.cpp, got "tensorrt"/);
});

test('a model folder without a GGUF decoder runs on ONNX Runtime whatever the backend asked for, and says so', async () => {
  const e = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider: 'cpu', threads: 1, backend: 'llama.cpp' });
  try {
    assert.equal(e.info.backend, 'onnx');
    assert.equal(e.info.backendReason, 'llama.cpp requested: this model folder has no GGUF decoder (convert it with --decoder gguf or both); ONNX Runtime');
  } finally {
    await e.dispose();
  }
});

test('a GGUF-only model folder (convert --decoder gguf): llama.cpp runs the decoder and ONNX Runtime only the vision tower; no ONNX fallback is offered', async () => {
  const c = Object.values(goldenCases()).find((x) => x.image)!;
  const dir = join(cacheDir, 'gguf-only-qwenvl-fp32');
  rmSync(dir, { recursive: true, force: true });
  const m = await convertCheckpoint(await ensureTinyCheckpoint(), dir, { ...decoderPrecision('gguf', 'fp32'), decoder: 'gguf' });
  assert.equal(m.decoders?.onnx, undefined);
  const e = await createEngine({ modelDir: dir, provider: 'cpu', threads: 1 });
  try {
    assert.equal(e.info.backend, 'llama.cpp');
    const r = await e.generateIds({ promptIds: c.prompt_ids, images: caseImagePath(c).map((path) => ({ path })), options: caseOptions(c) });
    assert.deepEqual(r.outputIds, c.output_ids);
  } finally {
    await e.dispose();
  }
  await assert.rejects(createEngine({ modelDir: dir, provider: 'cpu', threads: 1, backend: 'onnx' }), /no ONNX decoder \(converted with --decoder gguf\)/);
  const missing = join(cacheDir, 'llama-missing');
  mkdirSync(missing, { recursive: true });
  const r = engineInChild(dir, { DIFFUSIONVL_LLAMA_LIB_DIR: missing });
  assert.equal(r.signal, null, r.stderr.slice(-400));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /llama\.cpp cannot run this model folder's GGUF decoder \(.*no ggml-base library\), and the folder has no ONNX decoder to fall back to \(convert it with --decoder both\)/);
});
