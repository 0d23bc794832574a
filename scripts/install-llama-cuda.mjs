// Installs llama.cpp's CUDA build (≈ 140 MB compressed, so not part of `npm ci`) at the version package.json pins
// for the other llama.cpp library packages. Linux x64 and Windows x64 only; needs an NVIDIA driver with CUDA 12.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const version = pkg.optionalDependencies['@node-llama-cpp/linux-x64'];
const name = { 'linux-x64': 'linux-x64-cuda', 'win32-x64': 'win-x64-cuda' }[`${process.platform}-${process.arch}`];
if (!name) {
  console.error(`no llama.cpp CUDA build for ${process.platform}-${process.arch}`);
  process.exit(1);
}
execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['install', '--no-save', `@node-llama-cpp/${name}@${version}`], { stdio: 'inherit', shell: process.platform === 'win32' });
