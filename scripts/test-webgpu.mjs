// `npm run test:webgpu`: the WebGPU suite (test/webgpu) on SwiftShader, the software Vulkan driver of Debian's
// chromium package, so that the GPU code path (device-resident KV cache, IO binding) is tested on machines without
// a GPU. It checks correctness only, and asserts SwiftShader's behaviour (a software adapter without shader-f16).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const icd = '/usr/lib/chromium/vk_swiftshader_icd.json';
const fail = (msg) => {
  console.error(`test:webgpu: ${msg}`);
  process.exit(1);
};
if (!existsSync(icd)) fail(`no Vulkan driver manifest at ${icd}; install SwiftShader with \`sudo apt-get install chromium\` (Debian)`);
const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib'];
if (!libDirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) fail('no Vulkan loader (libvulkan.so.1); install it with `sudo apt-get install libvulkan1`');

const env = {
  ...process.env,
  VK_ICD_FILENAMES: icd,
  // Dawn warns without a runtime dir; any private writable folder will do.
  XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? mkdtempSync(join(tmpdir(), 'dvl-xdg-')),
};
const r = spawnSync(process.execPath, [join(root, 'scripts', 'run-tests.mjs'), '--suite', 'webgpu', ...process.argv.slice(2)], { stdio: 'inherit', cwd: root, env });
process.exit(r.status ?? 1);
