import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Engine, GenerateIdsRequest, GenerationResult } from '../../server/engine/api';
import { createEngine } from '../../server/engine/engine';
import { caseImagePath, caseOptions, goldenCases, type GoldenCase } from '../helpers/goldenCases';
import { ensureTinyModel } from '../helpers/tinyModel';

// The WebGPU provider on a real adapter: `npm run test:webgpu` points Vulkan at SwiftShader (a software GPU), so
// these runs check correctness, never speed. A machine without an adapter fails here: nothing is skipped.
const cases = goldenCases();
let gpu: Engine;

before(async () => {
  gpu = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider: 'webgpu' });
  assert.equal(gpu.info.provider, 'webgpu', `no WebGPU adapter: ${gpu.info.providerReason}`);
  assert.equal(gpu.info.providerReason, 'webgpu requested');
});

after(async () => {
  await gpu?.dispose();
});

const request = (c: GoldenCase, over: GenerateIdsRequest['options'] = {}): GenerateIdsRequest => ({
  promptIds: c.prompt_ids,
  images: caseImagePath(c).map((path) => ({ path })),
  // One denoising state per pass: these tests check the official call pattern on the device.
  options: { ...caseOptions(c), verifySteps: 1, ...over },
});

/** No past K/V tensor reached ONNX Runtime from host memory in this run, though the cache was in use. */
function assertKvStayedOnDevice(r: GenerationResult): void {
  assert.ok(r.stats.forwards.denoise > 0);
  assert.deepEqual(r.stats.io, { pastKvHostBytes: 0, pastKvHostRuns: 0 });
}

for (const [name, c] of Object.entries(cases)) {
  test(`fp32 on WebGPU, fused commit, device-resident KV: ${name} is token-identical to the official outputs (and the CPU)`, async () => {
    const r = await gpu.generateIds(request(c));
    assert.deepEqual(r.outputIds, c.output_ids);
    assertKvStayedOnDevice(r);
  });
}

test('prompt-prefix reuse on WebGPU reads the truncated device cache and stays token-identical', async () => {
  // The first run leaves its prompt block and five generated blocks in the cache; the second keeps only the
  // prompt block: a shorter view of the same device buffers.
  const c = cases['b2_text_dynamic_thr0.0001'];
  await gpu.generateIds(request(c));
  const r = await gpu.generateIds(request(c));
  assert.equal(r.stats.cache.prefixReusedTokens, 8);
  assert.deepEqual(r.outputIds, c.output_ids);
  assertKvStayedOnDevice(r);
});

test('fp32 on WebGPU, official call pattern (separate commit passes): same ids and forward counts, KV on the device', async () => {
  const c = cases['b2_text_dynamic_thr0.0001'];
  const r = await gpu.generateIds(request(c, { fusedCommit: false, prefixCache: false }));
  assert.deepEqual(r.outputIds, c.output_ids);
  const f = r.stats.forwards;
  assert.deepEqual({ prefill: f.prefill, denoise: f.denoise, commit: f.commit }, c.forwards);
  assertKvStayedOnDevice(r);
});

test('the same run on the CPU feeds past K/V from host memory (what the device path avoids)', async () => {
  const cpu = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider: 'cpu', threads: 1 });
  try {
    const c = cases['b2_text_dynamic_thr0.0001'];
    const r = await cpu.generateIds(request(c, { fusedCommit: false, prefixCache: false }));
    assert.deepEqual(r.outputIds, c.output_ids);
    // Every denoising and commit pass after the prefill reads the cache. One cached position is 2 layers × K and V
    // × 2 KV heads × 16 × 4 bytes = 512 bytes; b2 needs one denoising pass per block, so blocks 1..5 read P = 8,
    // 16, 24, 32, 40 positions twice each (denoise, commit): 240 positions — what CUDA would copy to the device.
    assert.equal(r.stats.io?.pastKvHostRuns, c.forwards.denoise + c.forwards.commit);
    assert.equal(r.stats.io?.pastKvHostBytes, 240 * 512);
  } finally {
    await cpu.dispose();
  }
});

/**
 * Two engines on one model must give the same ids for the same golden prompts (no prefix reuse); returns their
 * results, pairwise.
 */
async function sameIds(dir: string, a: Engine, b: Engine, names: string[], label: string): Promise<[GenerationResult, GenerationResult][]> {
  const out: [GenerationResult, GenerationResult][] = [];
  for (const name of names) {
    const req = request(cases[name], { prefixCache: false });
    const [ra, rb] = [await a.generateIds(req), await b.generateIds(req)];
    assert.deepEqual(rb.outputIds, ra.outputIds, `${label} ${name} (${dir}): ${b.info.provider} differs from ${a.info.provider}`);
    out.push([ra, rb]);
  }
  return out;
}

test('int4 on WebGPU: the device-resident KV cache gives exactly the ids of the host-memory cache on the same adapter (text and image)', async () => {
  // int4 is not compared with the CPU: the CPU's MatMulNBits quantises activations to int8 (accuracy_level 4),
  // WebGPU's keeps them in float32, so near-ties of the tiny random model can break differently.
  const dir = await ensureTinyModel('int4');
  const host = await createEngine({ modelDir: dir, provider: 'webgpu', kvOnDevice: false });
  const dev = await createEngine({ modelDir: dir, provider: 'webgpu' });
  try {
    assert.deepEqual([host.info.provider, dev.info.provider], ['webgpu', 'webgpu']);
    for (const [h, d] of await sameIds(dir, host, dev, ['b2_text_dynamic_thr0.0001', 'c_image1_static_s4'], 'int4')) {
      assert.ok((h.stats.io?.pastKvHostBytes ?? 0) > 0, 'the host-memory cache feeds past K/V every pass');
      assertKvStayedOnDevice(d);
    }
  } finally {
    await Promise.all([host.dispose(), dev.dispose()]);
  }
});

test('fp16 on WebGPU gives the CPU fp16 ids; an adapter without shader-f16 falls back to the CPU and says so', async () => {
  const dir = await ensureTinyModel('fp16');
  const cpu = await createEngine({ modelDir: dir, provider: 'cpu', threads: 1 });
  const dev = await createEngine({ modelDir: dir, provider: 'webgpu' });
  try {
    // SwiftShader has no shader-f16: the warm-up pass fails at load, so the engine never fails mid-answer.
    if (dev.info.provider !== 'webgpu') {
      assert.equal(dev.info.provider, 'cpu');
      assert.match(dev.info.providerReason, /^webgpu unavailable: the WebGPU adapter has no shader-f16 support, which this fp16 model needs .*; fell back to cpu$/);
    }
    await sameIds(dir, cpu, dev, ['b2_text_dynamic_thr0.0001'], 'fp16');
  } finally {
    await Promise.all([cpu.dispose(), dev.dispose()]);
  }
});

test('auto never picks a software adapter: SwiftShader is refused with the measured reason', async () => {
  const e = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider: 'auto' });
  try {
    assert.equal(e.info.provider, 'cpu');
    assert.match(e.info.providerReason, /^webgpu unavailable: the WebGPU adapter is a software renderer \(a probe ran \d+× slower than on the CPU: .*\).*; fell back to cpu$/);
  } finally {
    await e.dispose();
  }
});
