import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createEngine } from '../server/engine/engine';
import { caseOptions, goldenCases } from './helpers/goldenCases';
import { cacheDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

// A machine without a WebGPU adapter, made so on Linux by pointing the Vulkan loader at a driver list that does not
// exist (this test file runs in its own process, before anything opened a WebGPU device).
const linux = process.platform === 'linux';
if (linux) process.env.VK_ICD_FILENAMES = join(cacheDir, 'no-such-vulkan-driver.json');
const a = goldenCases().a_text_static_s8;

for (const provider of ['webgpu', 'auto'] as const) {
  test(`provider ${provider} without a WebGPU adapter: the CPU answers and EngineInfo says why (no TypeError)`, { skip: !linux && 'needs the Linux Vulkan loader to hide the adapter' }, async () => {
    const e = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider, threads: 1 });
    try {
      assert.equal(e.info.provider, 'cpu');
      assert.match(e.info.providerReason, /^webgpu unavailable: no WebGPU adapter: no GPU driver with Vulkan, Metal or Direct3D 12 support was found.*; fell back to cpu$/);
      const r = await e.generateIds({ promptIds: a.prompt_ids, images: [], options: { ...caseOptions(a), verifySteps: 1 } });
      assert.deepEqual(r.outputIds, a.output_ids);
      // The CPU reads the cache in place from host memory: every pass after the prefill feeds it.
      assert.equal(r.stats.io?.pastKvHostRuns, a.forwards.denoise);
    } finally {
      await e.dispose();
    }
  });
}
