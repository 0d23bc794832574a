import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeGoldenTinyCheckpoint } from './helpers/checkpoint/tinyCheckpoint';
import { ErrorCodes, Methods, type ErrorData, type AskResult, type PrepareModelResult, type StatusResult } from '../server/protocol';
import { startLspServer, type LspClient } from './helpers/lspClient';
import { startLocalHub, type HubFileSpec, type LocalHub } from './helpers/lspHub';
import { fixturesDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

const REPO = 'hustvl/DiffusionVL-Qwen2.5VL-3B';
let work: string;
let hub: LocalHub;
let client: LspClient;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'dvl-prep-'));
  const ckpt = join(work, 'ckpt');
  await writeGoldenTinyCheckpoint(ckpt);
  const files: HubFileSpec[] = [];
  for (const name of (await readdir(ckpt)).sort()) {
    files.push({ path: name, content: await readFile(join(ckpt, name)), lfs: name.endsWith('.safetensors') });
  }
  hub = await startLocalHub(REPO, files, {
    cutAfter: new Map([['model.safetensors', 5_000_000]]),
    corruptOnce: new Set(['vision_tower.safetensors', 'config.json']),
  });
  client = await startLspServer({ workspaceFolders: [fixturesDir], args: ['--model', await ensureTinyModel('fp32')], settings: { executionProvider: 'cpu' } });
});

after(async () => {
  await client?.close();
  await hub?.close();
  await rm(work, { recursive: true, force: true });
});

test('prepareModel downloads (resuming a cut, refetching a corrupted file), converts, and the model answers', async () => {
  const image = { path: join(fixturesDir, 'lsp', 'diagram.png') };
  const ask = { image, question: 'What is shown?', options: { maxNewTokens: 8 } };
  const before = await client.request<AskResult>(Methods.ask, ask);

  const progress: unknown[] = [];
  const sub = client.conn.onNotification('$/progress', (p: { token: string; value: unknown }) => {
    if (p.token === 'prep') progress.push(p.value);
  });
  const storageDir = join(work, 'storage');
  const res = await client.request<PrepareModelResult>(Methods.prepareModel, {
    storageDir,
    endpoint: hub.endpoint,
    repo: REPO,
    precision: 'fp32',
    workDoneToken: 'prep',
  });
  sub.dispose();
  assert.equal(res.resumedFiles, 1, 'cut connection resumed');
  assert.equal(res.refetchedFiles, 2, 'corrupted files refetched');
  assert.ok(res.converted);
  assert.ok(existsSync(join(res.modelDir, 'manifest.json')));
  // The hub cut the connection after sending 5 000 000 bytes; what reached the client before the cut (all of it or
  // less, depending on socket timing) is kept and the rest is asked for with one Range request.
  const ranged = hub.log.filter((l) => l.range);
  assert.deepEqual(ranged.map((l) => l.path.split('/').pop()), ['model.safetensors']);
  const from = Number(/^bytes=(\d+)-$/.exec(ranged[0].range ?? '')?.[1]);
  assert.ok(from > 0 && from <= 5_000_000, `resumed from byte ${from}`);
  assert.ok(progress.length >= 3, 'work-done progress reported');

  const after = await client.request<AskResult>(Methods.ask, ask);
  assert.equal(after.model, res.modelDir, 'the prepared model is active');
  assert.equal(after.text, before.text, 'same checkpoint, same answer');
  const st = await client.request<StatusResult>(Methods.status, null);
  assert.equal(st.download?.phase, 'done');

  // Again: everything verified and already converted, nothing fetched.
  const n = hub.log.length;
  const again = await client.request<PrepareModelResult>(Methods.prepareModel, { storageDir, endpoint: hub.endpoint, repo: REPO, precision: 'fp32' });
  assert.equal(again.converted, false);
  assert.equal(again.downloadedBytes, 0);
  assert.ok(hub.log.slice(n).every((l) => !l.path.includes('/resolve/')));
});

test('the SigLIP release is no longer refused up front; bad params are rejected', async () => {
  // The test hub does not host it, so the request gets as far as the download.
  await assert.rejects(
    client.request(Methods.prepareModel, { storageDir: work, endpoint: hub.endpoint, repo: 'hustvl/DiffusionVL-Qwen2.5-7B' }),
    (e: { code: number }) => e.code === ErrorCodes.DownloadFailed,
  );
  await assert.rejects(client.request(Methods.prepareModel, { storageDir: 'relative' }), (e: { code: number }) => e.code === ErrorCodes.InvalidParams);
  await assert.rejects(
    client.request(Methods.prepareModel, { storageDir: work, endpoint: hub.endpoint, repo: 'hustvl/nope' }),
    (e: { code: number }) => e.code === ErrorCodes.DownloadFailed,
  );
});

test('a local checkpoint that cannot be converted is a conversion error; an unknown architecture is an unsupported one', async () => {
  const good = join(work, 'ckpt');
  // Weights cut short: the converter fails part-way (on main this came back as a download failure).
  const truncated = join(work, 'ckpt-truncated');
  await cp(good, truncated, { recursive: true });
  await truncate(join(truncated, 'model.safetensors'), 4096);
  await assert.rejects(
    client.request(Methods.prepareModel, { storageDir: join(work, 'storage-bad'), localCheckpoint: truncated, precision: 'fp32', activate: false }),
    (e: { code: number; message: string; data?: ErrorData }) => {
      assert.equal(e.code, ErrorCodes.ConversionFailed, e.message);
      assert.deepEqual(e.data, { code: 'ConversionFailed', kind: 'conversion' });
      return true;
    },
  );
  // Another model family: refused by the converter's identity check, reported by its kind, not by its wording.
  const other = join(work, 'ckpt-other');
  await cp(good, other, { recursive: true });
  const config = JSON.parse(await readFile(join(other, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(other, 'config.json'), JSON.stringify({ ...config, model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
  await assert.rejects(
    client.request(Methods.prepareModel, { storageDir: join(work, 'storage-other'), localCheckpoint: other, precision: 'fp32', activate: false }),
    (e: { code: number; message: string; data?: ErrorData }) => {
      assert.equal(e.code, ErrorCodes.UnsupportedModel, e.message);
      assert.equal(e.data?.kind, 'unsupportedCheckpoint');
      assert.match(e.message, /unknown model_type "llama"/);
      return true;
    },
  );
});

test('prepareModel without a decoder or precision converts to what this machine runs fastest (llama.cpp loads here: a Q4_K_M GGUF on the CPU), once', async () => {
  const storageDir = join(work, 'storage-fastest');
  const local = join(work, 'ckpt');
  const res = await client.request<PrepareModelResult>(Methods.prepareModel, { storageDir, localCheckpoint: local, activate: false });
  assert.equal(res.converted, true);
  assert.match(res.modelDir, /-gguf-q4_k_m$/);
  const m = JSON.parse(await readFile(join(res.modelDir, 'manifest.json'), 'utf8')) as { precision: string; decoders: unknown };
  assert.deepEqual(m.decoders, { gguf: { file: 'decoder.q4_k_m.gguf', type: 'q4_k_m' } });
  assert.equal(m.precision, 'int4');
  assert.ok(existsSync(join(res.modelDir, 'decoder.q4_k_m.gguf')) && !existsSync(join(res.modelDir, 'decoder.onnx')));
  const again = await client.request<PrepareModelResult>(Methods.prepareModel, { storageDir, localCheckpoint: local, activate: false });
  assert.equal(again.converted, false);
  // Asked for explicitly: both decoders; a precision the decoder does not take is a params error.
  const both = await client.request<PrepareModelResult>(Methods.prepareModel, { storageDir, localCheckpoint: local, decoder: 'both', precision: 'q8_0', activate: false });
  assert.match(both.modelDir, /-both-q8_0$/);
  assert.ok(existsSync(join(both.modelDir, 'decoder.onnx')) && existsSync(join(both.modelDir, 'decoder.q8_0.gguf')));
  await assert.rejects(client.request(Methods.prepareModel, { storageDir, localCheckpoint: local, decoder: 'gguf', precision: 'int4', activate: false }), (e: { code: number; message: string }) => {
    assert.match(e.message, /precision must be one of fp32, fp16, q8_0, q4_0, q4_k_m with decoder gguf/);
    return true;
  });
});
