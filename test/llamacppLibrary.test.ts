import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { koffi } from '../server/engine/backends/llamacpp/koffi';
import { chooseLlamaDevice } from '../server/engine/backends/llamacpp/devices';
import { findLibraryDir, type LlamaDeviceInfo } from '../server/engine/backends/llamacpp/library';
import { LLAMA_LIBRARY_VERSION, LLAMA_PACKAGE_VERSION } from '../server/engine/backends/llamacpp/pinned';
import { Batch, ContextParams, EXPECTED_LAYOUT, ModelParams, QuantizeParams } from '../server/engine/backends/llamacpp/structs';
import { cacheDir, repoRoot } from './helpers/paths';

const libraryModule = join(repoRoot, 'out', 'server', 'engine', 'backends', 'llamacpp', 'library.js');

/** Loads the library in a child process (an abort there fails the test instead of killing the runner). */
function loadInChild(options: object): { status: number | null; signal: string | null; out: Record<string, unknown> | null; stderr: string } {
  const code = `
    const { loadLlamaLibrary } = require(${JSON.stringify(libraryModule)});
    let out;
    try {
      const lib = loadLlamaLibrary(${JSON.stringify(options)});
      out = { ok: true, llamaVersion: lib.llamaVersion, ggmlVersion: lib.ggmlVersion, devices: lib.devices.map((d) => d.type), cpuVariant: lib.cpuVariant };
    } catch (err) {
      out = { ok: false, name: err.name, message: err.message };
    }
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', cwd: repoRoot, timeout: 60_000 });
  let out: Record<string, unknown> | null = null;
  try {
    out = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    out = null;
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr };
}

test('koffi lays the llama.cpp structs out as the pinned header does (sizes and moved offsets)', () => {
  const types = { llama_model_params: ModelParams, llama_context_params: ContextParams, llama_model_quantize_params: QuantizeParams, llama_batch: Batch } as const;
  for (const [name, layout] of Object.entries(EXPECTED_LAYOUT)) {
    const t = types[name as keyof typeof types];
    assert.equal(koffi.sizeof(t), layout.size, `${name} size`);
    for (const [field, offset] of Object.entries(layout.offsets)) assert.equal(koffi.offsetof(t, field), offset, `${name}.${field}`);
  }
});

test('the pinned llama.cpp library loads, passes its version and layout checks, and has a CPU device', () => {
  const r = loadInChild({});
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.out?.ok, true, JSON.stringify(r.out));
  assert.match(String(r.out?.llamaVersion), new RegExp(`^${LLAMA_LIBRARY_VERSION.replace(/\./g, '\\.')}(-dev)?$`));
  assert.ok((r.out?.devices as string[]).includes('cpu'));
});

test('a missing library is a clear "unavailable" error, not a crash', () => {
  const empty = join(cacheDir, 'llama-missing');
  mkdirSync(empty, { recursive: true });
  const r = loadInChild({ libraryDir: empty });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.out, { ok: false, name: 'LlamaUnavailableError', message: `the llama.cpp library folder ${empty} has no ggml-base library` });
});

test('another build of the library (version string differs) is refused before any struct is passed', { skip: process.platform !== 'linux' && 'patches a Linux .so' }, () => {
  // A real library whose llama_version() says 0.3.9: a copy of the package folder with that one string changed.
  const src = findLibraryDir(true);
  const dir = join(cacheDir, 'llama-wrong-version');
  rmSync(dir, { recursive: true, force: true });
  cpSync(src, dir, { recursive: true });
  const lib = readdirSync(dir).find((n) => /^libllama\..*so$/.test(n))!;
  const bytes = readFileSync(join(dir, lib));
  const from = Buffer.from(`${LLAMA_LIBRARY_VERSION}-dev\0`);
  const at = bytes.indexOf(from);
  assert.ok(at > 0 && bytes.indexOf(from, at + 1) < 0, 'the version string occurs once');
  Buffer.from('0.3.9-dev\0').copy(bytes, at);
  writeFileSync(join(dir, lib), bytes);
  const r = loadInChild({ libraryDir: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.out?.ok, false);
  assert.equal(r.out?.name, 'LlamaUnavailableError');
  assert.match(String(r.out?.message), /is version 0\.3\.9-dev \(ggml 0\.23\.0\); this build of DiffusionVL needs 0\.4\.0 \(ggml 0\.23\.0\)/);
});

test('a pinned CPU variant that the build lacks is refused with the list it has', () => {
  const r = loadInChild({ cpuVariant: 'no-such-cpu' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.out?.ok, false);
  assert.match(String(r.out?.message), /^CPU variant "no-such-cpu" is not in this llama.cpp build \(it has: .*\bx64\b/);
});

test('device choice: a hardware GPU for auto, never a software one; cpu when asked or when none', () => {
  const dev = (name: string, type: LlamaDeviceInfo['type'], description: string): LlamaDeviceInfo => ({ index: 0, name, type, description, handle: null });
  const cpu = dev('CPU', 'cpu', 'Intel Xeon');
  const lavapipe = dev('Vulkan0', 'gpu', 'llvmpipe (LLVM 15.0.7, 256 bits)');
  const nvidia = dev('Vulkan1', 'gpu', 'NVIDIA H100');
  const cuda = dev('CUDA0', 'gpu', 'NVIDIA H100');
  assert.equal(chooseLlamaDevice([cpu, lavapipe], 'auto').device, null);
  assert.match(chooseLlamaDevice([cpu, lavapipe], 'auto').reason, /^auto: no hardware GPU found by llama\.cpp; Vulkan0 \(llvmpipe .*\) is a software GPU; llama\.cpp on the cpu$/);
  assert.equal(chooseLlamaDevice([cpu, lavapipe, nvidia], 'auto').device, nvidia);
  assert.equal(chooseLlamaDevice([cpu, nvidia, cuda], 'cuda').device, cuda);
  assert.equal(chooseLlamaDevice([cpu, nvidia], 'cuda').device, null);
  assert.equal(chooseLlamaDevice([cpu, nvidia], 'cpu').device, null);
});

test('package.json pins every llama.cpp library package at the version the struct layouts were written from', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
  const pinned = Object.entries(pkg.optionalDependencies).filter(([n]) => n.startsWith('@node-llama-cpp/'));
  assert.ok(pinned.length >= 7);
  for (const [name, version] of pinned) assert.equal(version, LLAMA_PACKAGE_VERSION, name);
});
