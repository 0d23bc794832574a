// `npm run test:webgpu`: the WebGPU suite (test/webgpu) on SwiftShader, the software Vulkan driver of Debian's
// chromium package, so that the GPU code path (device-resident KV cache, IO binding) is tested on machines without
// a GPU. It checks correctness only. Set VK_ICD_FILENAMES yourself to run it on another Vulkan driver.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const icd = process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json';
const fail = (msg) => {
  console.error(`test:webgpu: ${msg}`);
  process.exit(1);
};
if (!existsSync(icd)) fail(`no Vulkan driver manifest at ${icd}; install SwiftShader with \`sudo apt-get install chromium\` (Debian)`);
const loader = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? '';
if (!loader.includes('libvulkan.so.1')) fail('no Vulkan loader (libvulkan.so.1); install it with `sudo apt-get install libvulkan1`');

const dir = join(root, 'out', 'test', 'webgpu');
const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.js')).map((f) => join(dir, f)) : [];
if (files.length === 0) fail(`no test files under ${dir}; run \`npm run build\` first`);
const env = {
  ...process.env,
  VK_ICD_FILENAMES: icd,
  // Dawn warns without a runtime dir; any private writable folder will do.
  XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? mkdtempSync(join(tmpdir(), 'dvl-xdg-')),
};
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', cwd: root, env });
process.exit(r.status ?? 1);
