import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkVulkanDriver, vulkanDriverManifests } from '../server/engine/backends/onnx/vulkanDrivers';
import { createEngine } from '../server/engine/engine';
import { caseOptions, goldenCases } from './helpers/goldenCases';
import { cacheDir, repoRoot } from './helpers/paths';
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

test('an ask on a machine without a Vulkan driver prints no native warning (Dawn, Vulkan loader) to the terminal', { skip: !linux && 'Vulkan is the Linux WebGPU backend' }, () => {
  if (!existsSync(join(repoRoot, 'dist', 'cli.js'))) execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repoRoot, stdio: 'inherit' });
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffusionvl.js'), 'ask', 'media/examples/chart-1.png', 'Which bar is the tallest?', '--max-tokens', '8'], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, VK_ICD_FILENAMES: join(cacheDir, 'no-such-vulkan-driver.json') },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /provider: cpu \(webgpu unavailable: no WebGPU adapter: .*no Vulkan driver manifest/);
  // What Dawn and the loader print when they are asked: "Warning: vkCreateInstance: Found no drivers!" and a build path.
  assert.doesNotMatch(r.stderr, /vkCreateInstance|VK_ERROR|dawn|\/build\//i);
  assert.ok(r.stdout.trim().length > 0);
});

test("the Vulkan driver search follows the loader's: VK_DRIVER_FILES/VK_ICD_FILENAMES replace it, else the XDG icd.d folders", () => {
  const dir = mkdtempSync(join(tmpdir(), 'vk-icd-'));
  try {
    const icd = join(dir, 'data', 'vulkan', 'icd.d');
    mkdirSync(icd, { recursive: true });
    const empty = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'c'), XDG_CONFIG_DIRS: join(dir, 'cd'), XDG_DATA_HOME: join(dir, 'dh'), XDG_DATA_DIRS: join(dir, 'data') };
    assert.deepEqual(vulkanDriverManifests(empty), []);
    writeFileSync(join(icd, 'vendor_icd.json'), '{}');
    writeFileSync(join(icd, 'README'), '');
    assert.deepEqual(vulkanDriverManifests(empty), [join(icd, 'vendor_icd.json')]);
    assert.deepEqual(vulkanDriverManifests({ ...empty, VK_ICD_FILENAMES: join(dir, 'none.json') }), []);
    assert.deepEqual(vulkanDriverManifests({ ...empty, VK_DRIVER_FILES: icd, VK_ICD_FILENAMES: join(dir, 'none.json') }), [join(icd, 'vendor_icd.json')]);
    assert.deepEqual(checkVulkanDriver(empty, 'darwin'), {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
