import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Engine, GenerationResult, RunOptions } from '../server/engine/api';
import { createEngine } from '../server/engine/engine';
import { caseImagePath, caseOptions, goldenCases, siglipCaseImages, siglipCaseOptions, siglipGoldenCases } from './helpers/goldenCases';
import { ensureTinyModel } from './helpers/tinyModel';
import { ensureTinyLlamaModel } from './helpers/tinyLlamaModel';
import { ensureTinySiglipModel } from './helpers/tinySiglipModel';

// Verified multi-step decoding on every official generation case of both architectures, on both decoder backends
// (ONNX Runtime and llama.cpp, F32 weights): the official ids at K = 2, 4 and 8 states per forward, fused and unfused,
// and never more denoising forwards than K = 1.
const KS = [2, 4, 8];
// llama.cpp's tiny-model passes cost ~0.3 s each on a loaded 2-core machine: `npm test` checks every case there at
// K = 8 with fused commits; `npm run test:verify-full` checks the whole matrix (K = 2, 4, 8, fused and unfused).
const FULL = process.env.DIFFUSIONVL_VERIFY_FULL === '1';
const matrix = (backend: string) => (backend === 'onnx' || FULL ? { ks: KS, fused: [false, true] } : { ks: [8], fused: [true] });


const siglipCases = siglipGoldenCases();

const BACKENDS = ['onnx', 'llama.cpp'] as const;
const engines: Record<string, Engine> = {};

before(async () => {
  engines['onnx qwenvl'] = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider: 'cpu', threads: 1, backend: 'onnx' });
  engines['onnx siglip'] = await createEngine({ modelDir: await ensureTinySiglipModel('fp32'), provider: 'cpu', threads: 1, backend: 'onnx' });
  engines['llama.cpp qwenvl'] = await createEngine({ modelDir: await ensureTinyLlamaModel('qwenvl'), provider: 'cpu', threads: 1, backend: 'llama.cpp' });
  engines['llama.cpp siglip'] = await createEngine({ modelDir: await ensureTinyLlamaModel('siglip'), provider: 'cpu', threads: 1, backend: 'llama.cpp' });
  for (const [name, e] of Object.entries(engines)) assert.equal(e.info.backend, name.split(' ')[0], `${name}: ${e.info.backendReason}`);
});

after(async () => {
  for (const e of Object.values(engines)) await e.dispose();
});

/** Runs one case at K = 1 and at every K of KS; checks ids against the official ones and the forward counts. */
// K = 1 is checked against the official ids and counts by engine.golden and siglipGolden: its counts are the official
// ones (denoising passes = steps; commits fused into the next block's first pass, the last one dropped).
async function checkCase(
  backend: string,
  run: (o: RunOptions) => Promise<GenerationResult>,
  label: string,
  official: { output_ids: number[]; forwards: { prefill: number; denoise: number; commit: number } },
): Promise<void> {
  const { ks, fused } = matrix(backend);
  for (const fusedCommit of fused) {
    const base = { forwards: { ...official.forwards, commit: fusedCommit ? 0 : official.forwards.commit } };
    for (const k of ks) {
      const r = await run({ fusedCommit, verifySteps: k });
      const what = `${backend}, ${label} (${fusedCommit ? 'fused' : 'unfused'}) K=${k}`;
      assert.deepEqual(r.outputIds, official.output_ids, what);
      const f = r.stats.forwards;
      assert.ok(f.denoise <= base.forwards.denoise, `${what}: ${f.denoise} denoising forwards > ${base.forwards.denoise} at K=1`);
      // Every step is either a forward's own state or an accepted draft.
      assert.equal(f.denoise + (f.draftsAccepted ?? 0), base.forwards.denoise, `${what}: forwards + accepted drafts = steps`);
      assert.equal(f.commit, base.forwards.commit, `${what}: commits`);
      assert.equal(f.prefill, base.forwards.prefill, `${what}: prefills`);
    }
  }
}

for (const backend of BACKENDS) {
  const ks = matrix(backend).ks.join(', ');
  for (const [name, c] of Object.entries(goldenCases())) {
    test(`${backend}, QwenVL ${name}: official ids at K = ${ks}`, async () => {
      const images = caseImagePath(c).map((path) => ({ path }));
      await checkCase(backend, (o) => engines[`${backend} qwenvl`].generateIds({ promptIds: c.prompt_ids, images, options: { ...caseOptions(c), prefixCache: false, ...o } }), name, c);
    });
  }

  for (const [name, c] of Object.entries(siglipCases)) {
    test(`${backend}, SigLIP ${name}: official ids at K = ${ks}`, async () => {
      const options = siglipCaseOptions(c); // its verifySteps is overridden by each run's K
      const images = siglipCaseImages(c);
      await checkCase(backend, (o) => engines[`${backend} siglip`].generateIds({ promptIds: c.prompt_ids, images, options: { ...options, ...o } }), name, c);
    });
  }
}

test('prompt-prefix reuse keeps working with verified steps: a repeated prompt reuses its prefill and gives the same ids', async () => {
  const [name, c] = Object.entries(goldenCases())[0];
  const images = caseImagePath(c).map((path) => ({ path }));
  const qwenvl = engines['onnx qwenvl'];
  const first = await qwenvl.generateIds({ promptIds: c.prompt_ids, images, options: { ...caseOptions(c), verifySteps: 4 } });
  const again = await qwenvl.generateIds({ promptIds: c.prompt_ids, images, options: { ...caseOptions(c), verifySteps: 4 } });
  assert.deepEqual(first.outputIds, c.output_ids, name);
  assert.deepEqual(again.outputIds, c.output_ids, `${name}, prefix reused`);
  assert.equal(again.stats.cache.prefixHit, true);
  assert.equal(again.stats.forwards.prefill, 0);
});

test('sampling (temperature > 0): the same ids at K = 4 as at K = 1 for the same seed (drafting draws no random numbers)', async () => {
  const e = engines['onnx qwenvl'];
  const [name, c] = Object.entries(goldenCases())[0];
  // No top-k / top-p filter: their sorts over the vocabulary would only slow the test down.
  for (const seed of [1, 2]) {
    const options: RunOptions = { ...caseOptions(c), temperature: 0.7, seed, prefixCache: false };
    const one = await e.generateIds({ promptIds: c.prompt_ids, images: [], options: { ...options, verifySteps: 1 } });
    const four = await e.generateIds({ promptIds: c.prompt_ids, images: [], options: { ...options, verifySteps: 4 } });
    assert.deepEqual(four.outputIds, one.outputIds, `${name}, seed ${seed}`);
    assert.ok(four.stats.forwards.draftsChecked! > 0, 'drafts were made and checked');
    assert.equal(four.stats.forwards.denoise + four.stats.forwards.draftsAccepted!, one.stats.forwards.denoise);
  }
});
