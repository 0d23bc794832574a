/** The sidecar runs the SigLIP model like the others: a real server process over LSP answers, and status names it. */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createEngine } from '../server/engine/engine';
import { architectureLabel, Methods, type AskResult, type StatusResult } from '../server/protocol';
import { startLspServer, type LspClient } from './helpers/lspClient';
import { fixturesDir } from './helpers/paths';
import { ensureTinySiglipModel } from './helpers/tinySiglipModel';

const SOURCE = join(fixturesDir, 'golden-siglip', 'images', 'img1_banner_1000x200.png');
let IMAGE: string;
const QUESTION = 'What is in the picture?';
const OPTIONS = { maxNewTokens: 16, steps: 4 };
let model: string;
let ws: string;
let client: LspClient;
let reference: string;

before(async () => {
  model = await ensureTinySiglipModel('fp32');
  ws = await mkdtemp(join(tmpdir(), 'dvl-siglip-ws-'));
  IMAGE = join(ws, 'banner.png');
  await copyFile(SOURCE, IMAGE);
  const engine = await createEngine({ modelDir: model, provider: 'cpu' });
  try {
    reference = (await engine.ask({ images: [{ path: IMAGE }], question: QUESTION, options: OPTIONS })).text;
  } finally {
    await engine.dispose();
  }
  client = await startLspServer({ workspaceFolders: [ws], args: ['--model', model], settings: { executionProvider: 'cpu' } });
});

after(async () => {
  await client?.close();
  if (ws) await rm(ws, { recursive: true, force: true });
});

test('ask over LSP on the SigLIP model gives the engine’s answer; status shows the architecture', async () => {
  const res = await client.request<AskResult>(Methods.ask, { image: { path: IMAGE }, question: QUESTION, options: OPTIONS });
  assert.equal(res.text, reference);
  assert.ok(res.text.length > 0);
  const st = await client.request<StatusResult>(Methods.status, null);
  assert.equal(st.model.state, 'ready');
  assert.equal(st.model.architecture, 'diffusionvl_qwen');
  assert.match(architectureLabel(st.model.architecture ?? ''), /SigLIP/);
});
