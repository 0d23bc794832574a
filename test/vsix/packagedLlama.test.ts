import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { CPU_VARIANT_ENV, LIBRARY_DIR_ENV } from '../../server/engine/backends/llamacpp/library';
import { libraryPackages } from '../../server/engine/backends/llamacpp/pinned';
import { Methods, type AskResult, type StatusResult } from '../../server/protocol';
import { startLspServer } from '../helpers/lspClient';
import { fixturesDir, repoRoot } from '../helpers/paths';
import { ensureTinyLlamaModel } from '../helpers/tinyLlamaModel';
import { extractZip, type ZipEntry } from '../helpers/zip';

/**
 * The packaged extension (the .vsix `npm run package` builds for this machine, unzipped as VS Code installs it) runs
 * the text decoder on the llama.cpp libraries it carries: its sidecar, started from the package's own
 * dist/server.js with nothing of this checkout on its module path, loads them from the package's node_modules.
 * `npm run test:vsix` packages first.
 */
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };
const target = `${process.platform}-${process.arch}`;
const vsix = join(repoRoot, 'dist', `${pkg.name}-${target}-${pkg.version}.vsix`);
// CUDA builds stay out of the package by design (see the README's packaging section).
const shipped = libraryPackages().filter((n) => !n.endsWith('-cuda'));
let dir: string;
let entries: ZipEntry[];
let model: string;

before(async () => {
  assert.ok(existsSync(vsix), `${vsix} is missing: run npm run package (npm run test:vsix does)`);
  dir = await mkdtemp(join(tmpdir(), 'dvl-vsix-'));
  entries = extractZip(vsix, dir);
  model = await ensureTinyLlamaModel('qwenvl');
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the .vsix carries koffi and this platform’s llama.cpp libraries, CPU and GPU builds, without what the backend never loads', () => {
  assert.ok(shipped.length > 0, `no llama.cpp package for ${target}`);
  const names = entries.map((e) => e.name);
  assert.ok(names.includes('extension/node_modules/koffi/package.json'), 'koffi');
  for (const name of shipped) {
    const bins = `extension/node_modules/@node-llama-cpp/${name}/bins/${name}/`;
    const libs = names.filter((n) => n.startsWith(bins)).map((n) => n.slice(bins.length));
    assert.ok(libs.some((n) => /^(lib)?llama(\.[a-z]+)?\.v[\d.]+\.(so|dylib|dll)$/.test(n)), `${name}: libllama in ${libs.join(', ')}`);
    assert.ok(libs.some((n) => /^(lib)?ggml-base\.(so|dylib|dll)$/.test(n)), `${name}: ggml-base`);
    assert.ok(!libs.some((n) => /llama-addon\.node$|llama-common\./.test(n)), `${name}: node-llama-cpp's own addon and common library stay out: ${libs.join(', ')}`);
  }
});

for (const provider of ['cpu', 'auto'] as const) {
  test(`the packaged sidecar answers on llama.cpp from the package's own libraries (provider ${provider})`, async () => {
    // The CPU loads the package without a GPU backend; auto the first one that has one (see findLibraryDir).
    const expected = provider === 'cpu' ? shipped[shipped.length - 1] : shipped[0];
    const client = await startLspServer({
      entry: [join(dir, 'extension', 'dist', 'server.js'), '--stdio'],
      settings: { modelPath: model, backend: 'llama.cpp', executionProvider: provider },
      env: { [LIBRARY_DIR_ENV]: '', [CPU_VARIANT_ENV]: '', NODE_PATH: '' },
    });
    try {
      const res = await client.request<AskResult>(Methods.ask, { image: { path: join(fixturesDir, 'lsp', 'diagram.png') }, question: 'What does this diagram show?', options: { maxNewTokens: 8 } });
      assert.equal(res.stats?.generatedTokens, 8);
      const status = await client.request<StatusResult>(Methods.status, null);
      assert.equal(status.backend.inUse, 'llama.cpp', `decoder: ${JSON.stringify(status.backend)}\n${client.stderr().slice(-2000)}`);
      assert.match(status.backend.reason ?? '', /llama\.cpp/);
      if (process.platform === 'linux') {
        // Which files the sidecar really mapped: the package's libllama, and no other.
        const maps = readFileSync(`/proc/${client.proc.pid}/maps`, 'utf8');
        const llama = [...new Set(maps.split('\n').map((l) => l.split(/\s+/).slice(5).join(' ')).filter((p) => /[\\/](lib)?llama[^\\/]*\.so/.test(p)))];
        const bins = join(dir, 'extension', 'node_modules', '@node-llama-cpp', expected, 'bins', expected) + sep;
        assert.ok(llama.length > 0 && llama.every((p) => p.startsWith(bins)), `libllama mapped from ${JSON.stringify(llama)}, expected under ${bins}`);
      }
    } finally {
      await client.close();
    }
  });
}
