import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultModelDir, isModelDir } from '../server/engine/defaultModel';
import { createEngine } from '../server/engine/engine';
import { Methods, type AskResult, type StatusResult } from '../server/protocol';
import { startLspServer } from './helpers/lspClient';
import { fixturesDir, repoRoot } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

const cli = join(repoRoot, 'dist', 'cli.js');

/** The bundle is what users run; a missing one is a failure (run `npm run build`), never a skip. */
function requireBundle(): void {
  assert.ok(existsSync(cli), `${cli} is missing: run \`npm run build\` before the tests`);
}

test('`diffusionvl serve --stdio --model <dir>` from the bundle answers a plain LSP client', async () => {
  requireBundle();
  const model = await ensureTinyModel('fp32');
  // No workspace folders and bare capabilities: any LSP client.
  const client = await startLspServer({ entry: [cli, 'serve', '--stdio'], args: ['--model', model], capabilities: {} });
  try {
    const res = await client.request<AskResult>(Methods.ask, {
      image: { path: join(fixturesDir, 'lsp', 'diagram.png') },
      question: 'What is this?',
      options: { maxNewTokens: 8 },
    });
    assert.equal(res.model, model);
    assert.equal(res.stats!.generatedTokens, 8);
    assert.equal(res.stats!.forwards.total, res.stats!.forwards.prefill + res.stats!.forwards.denoise + res.stats!.forwards.commit);
  } finally {
    await client.close();
  }
});

test('`diffusionvl serve --stdio` with nothing configured answers with the embedded default model, as `ask` does', async () => {
  requireBundle();
  const model = defaultModelDir();
  assert.ok(isModelDir(model), `${model} is missing: the embedded default model ships with the project`);
  const image = join(repoRoot, 'media', 'examples', 'chart-1.png');
  const question = 'Which bar is the tallest?';
  const engine = await createEngine({ modelDir: model, provider: 'cpu', threads: 1 });
  let expected: string;
  try {
    expected = (await engine.ask({ images: [{ path: image }], question })).text;
  } finally {
    await engine.dispose();
  }
  assert.ok(expected.trim().length > 0);

  // A bare client (Neovim, Helix, Emacs): no settings at all beyond the provider, no workspace folders.
  const client = await startLspServer({ entry: [cli, 'serve', '--stdio'], capabilities: {}, settings: { executionProvider: 'cpu' } });
  try {
    const before = await client.request<StatusResult>(Methods.status, null);
    assert.equal(before.model.dir, model);
    assert.equal(before.model.source, 'default');
    assert.equal(before.model.state, 'unloaded');
    const res = await client.request<AskResult>(Methods.ask, { image: { path: image }, question });
    assert.equal(res.text, expected);
    assert.equal(res.model, model);
    const after = await client.request<StatusResult>(Methods.status, null);
    assert.equal(after.model.state, 'ready');
    assert.equal(after.model.source, 'default');
  } finally {
    await client.close();
  }
});
