/**
 * `convert <fp32-model-folder> <out> --decoder gguf|both`: the text weights read back from the ONNX files are the
 * checkpoint's bit for bit (the GGUF equals the one written from the checkpoint itself), llama.cpp on the new folder
 * generates ONNX Runtime's ids on the same folder (real libraries), the CLI writes a complete folder with a quantised
 * decoder, rounded (int4) folders are refused, and `eval-synthetic --backend` reports the backend and each answer.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { convertModelFolder } from '../server/converter/fromModelFolder';
import type { Engine } from '../server/engine/api';
import { createEngine } from '../server/engine/engine';
import { readManifest } from '../server/engine/manifest';
import type { EvalReport } from '../server/synthetic/evaluate';
import { caseImagePath, caseOptions, goldenCases } from './helpers/goldenCases';
import { readGguf, readGgufTensor } from './helpers/ggufReader';
import { cacheDir, repoRoot } from './helpers/paths';
import { ensureTinyGguf } from './helpers/tinyGguf';
import { ensureTinyModel } from './helpers/tinyModel';

const out = join(cacheDir, 'gguf-from-folder');
let fp32Dir: string;
let both: string;

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffusionvl.js'), ...args], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 1 << 28 });
}

before(async () => {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  fp32Dir = await ensureTinyModel('fp32');
  both = join(out, 'both-f32');
  await convertModelFolder(fp32Dir, both, { decoder: 'both', ggufType: 'fp32' });
});

after(() => rm(out, { recursive: true, force: true }));

test('the F32 GGUF read back from an fp32 folder holds exactly the checkpoint GGUF\'s tensors', async () => {
  const m = readManifest(both);
  assert.deepEqual(m.decoders, { onnx: { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx' }, gguf: { file: 'decoder.fp32.gguf', type: 'fp32' } });
  assert.equal(m.precision, 'fp32');
  const ours = readGguf(join(both, 'decoder.fp32.gguf'));
  const fromCheckpoint = readGguf(await ensureTinyGguf('qwenvl'));
  assert.deepEqual(ours.tensors.map((t) => [t.name, t.ne, t.type]), fromCheckpoint.tensors.map((t) => [t.name, t.ne, t.type]));
  for (const t of ours.tensors) assert.deepEqual(readGgufTensor(ours, t.name), readGgufTensor(fromCheckpoint, t.name), t.name);
  // Everything else is the source folder's, unchanged.
  for (const f of ['vision.onnx', 'vision.onnx.data', 'embeddings.bin', 'decoder.onnx', 'decoder.onnx.data', 'lm_head.onnx.data']) {
    assert.ok(readFileSync(join(both, f)).equals(readFileSync(join(fp32Dir, f))), f);
  }
});

test('llama.cpp on the converted folder generates the ids ONNX Runtime generates on it (golden cases, with and without an image)', async () => {
  const engines: Engine[] = [];
  try {
    const onnx = await createEngine({ modelDir: both, provider: 'cpu', threads: 1, backend: 'onnx' });
    engines.push(onnx);
    const llama = await createEngine({ modelDir: both, provider: 'cpu', threads: 1, backend: 'llama.cpp' });
    engines.push(llama);
    assert.equal(onnx.info.backend, 'onnx');
    assert.equal(llama.info.backend, 'llama.cpp', llama.info.backendReason);
    const cases = Object.entries(goldenCases());
    // One case with an image and one without (engine.llamacpp.test.ts runs them all on llama.cpp).
    for (const [name, c] of [cases.find(([, x]) => x.image), cases.find(([, x]) => !x.image)].filter((x) => x !== undefined)) {
      const req = { promptIds: c.prompt_ids, images: caseImagePath(c).map((path) => ({ path })), options: caseOptions(c) };
      const a = await onnx.generateIds(req);
      const b = await llama.generateIds(req);
      assert.deepEqual(b.outputIds, a.outputIds, name);
      assert.deepEqual(a.outputIds, c.output_ids, `${name}: the official ids`);
    }
  } finally {
    await Promise.all(engines.map((e) => e.dispose()));
  }
});

test('the CLI: convert <fp32 folder> <out> --decoder gguf --precision q8_0 writes a complete folder with a Q8_0 decoder', () => {
  const dir = join(out, 'cli-q8_0');
  const r = cli(['convert', fp32Dir, dir, '--decoder', 'gguf', '--precision', 'q8_0', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Converted diffusionvl_qwenvl \(2 layers, hidden 64, GGUF q8_0 decoder\) to /);
  const m = readManifest(dir);
  assert.deepEqual(m.decoders, { gguf: { file: 'decoder.q8_0.gguf', type: 'q8_0' } });
  assert.equal(m.files.decoder, undefined);
  assert.equal(m.precision, 'fp32'); // the ONNX parts (vision, embeddings) are the source's
  assert.deepEqual(readdirSync(dir).sort(), ['decoder.q8_0.gguf', 'embeddings.bin', 'manifest.json', 'tokenizer.json', 'vision.onnx', 'vision.onnx.data']);
  const f = readGguf(join(dir, 'decoder.q8_0.gguf'));
  assert.equal(f.meta.get('general.file_type'), 7);
  assert.ok(f.tensors.filter((t) => t.name.startsWith('blk.') && t.ne.length === 2).every((t) => t.type === 8)); // Q8_0
});

test('rounded folders, --decoder onnx and writing over the source are refused with a plain message', async () => {
  const int4 = await ensureTinyModel('int4');
  const r = cli(['convert', int4, join(out, 'from-int4'), '--decoder', 'gguf', '--precision', 'q4_0', '--quiet']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /is an int4 model folder: its weights are rounded \(4-bit\), not the originals/);
  assert.ok(!existsSync(join(out, 'from-int4')) && !existsSync(join(out, 'from-int4.partial')));
  await assert.rejects(convertModelFolder(fp32Dir, join(out, 'onnx'), { decoder: 'onnx' }), /already has its ONNX decoder/);
  await assert.rejects(convertModelFolder(fp32Dir, fp32Dir, { decoder: 'gguf', ggufType: 'fp32' }), /not over it/);
  assert.ok(existsSync(join(fp32Dir, 'manifest.json')));
});

test('eval-synthetic --backend: the report names the backend that ran and carries each answer', () => {
  const run = (model: string, backend: string) => {
    const r = cli(['eval-synthetic', '--model', model, '--backend', backend, '--seed', '3', '--count', '1', '--no-ar', '--thresholds', '0.9', '--threads', '1', '--json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as EvalReport;
  };
  for (const backend of ['onnx', 'llama.cpp']) {
    const report = run(both, backend);
    assert.equal(report.backend, backend, report.backendReason);
    assert.deepEqual(report.rows.map((r) => r.name), ['diffusion, static', 'diffusion, dynamic 0.9']);
    for (const row of report.rows) {
      assert.equal(row.answers.length, 1);
      assert.equal(row.answers.filter((a) => a.correct).length, row.correct);
      assert.ok(row.answers.every((a) => a.ids.length > 0 && a.ids.length <= report.maxNewTokens), JSON.stringify(row.answers));
    }
  }
  const bad = cli(['eval-synthetic', '--model', both, '--backend', 'gguf', '--count', '1', '--no-ar']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--backend must be one of auto, onnx, llama\.cpp/);
});
