// The sidecar killed for real (SIGKILL) during a download, a conversion and an ask, and asks cancelled in a row (100 of them, and 200-ask soaks, in test/soak/).
// After a kill the next sidecar resumes or redoes the work, never loads a half-written model and never fetches a
// verified file again; after the cancellations the queue is empty, memory is back near its level and answers are
// unchanged.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ErrorCodes, Methods, type AskResult, type PartialAnswerParams, type PrepareModelResult, type StatusResult } from '../server/protocol';
import { writeGoldenTinyCheckpoint } from './helpers/checkpoint/tinyCheckpoint';
import { CancellationTokenSource, startLspServer, type LspClient } from './helpers/lspClient';
import { startLocalHub, type HubFileSpec } from './helpers/lspHub';
import { fixturesDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

const REPO = 'hustvl/DiffusionVL-Qwen2.5VL-3B';
let work: string;
let ckpt: string;
let tiny: string;
let image: { path: string };
const servers: LspClient[] = [];

before(async () => {
  tiny = await ensureTinyModel('fp32');
  work = await mkdtemp(join(tmpdir(), 'dvl-kill-'));
  ckpt = join(work, 'ckpt');
  await writeGoldenTinyCheckpoint(ckpt);
  await writeFile(join(work, 'ok.png'), await readFile(join(fixturesDir, 'lsp', 'diagram.png')));
  image = { path: join(work, 'ok.png') };
});

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(work, { recursive: true, force: true });
});

async function sidecar(settings: Record<string, unknown> = {}): Promise<LspClient> {
  const s = await startLspServer({ workspaceFolders: [work], args: ['--model', tiny], settings: { executionProvider: 'cpu', ...settings } });
  servers.push(s);
  return s;
}

async function kill(s: LspClient): Promise<void> {
  const gone = new Promise<void>((resolve) => (s.proc.exitCode !== null || s.proc.signalCode !== null ? resolve() : s.proc.once('exit', () => resolve())));
  s.proc.kill('SIGKILL');
  await gone;
  s.conn.dispose();
}

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const question = { question: 'What is shown?', options: { maxNewTokens: 16 } };

test('SIGKILL during a download: the next sidecar resumes the cut file and fetches no verified file again', { timeout: 180_000 }, async () => {
  const files: HubFileSpec[] = [];
  for (const name of (await readdir(ckpt)).sort()) files.push({ path: name, content: await readFile(join(ckpt, name)), lfs: name.endsWith('.safetensors') });
  const held = 'model.safetensors';
  const hub = await startLocalHub(REPO, files, { holdAfter: new Map([[held, 3_000_000]]) });
  const storageDir = join(work, 'storage-dl');
  const checkpointDir = join(storageDir, 'checkpoints', REPO.replace('/', '--'));
  try {
    const first = await sidecar();
    const running = first.request<PrepareModelResult>(Methods.prepareModel, { storageDir, endpoint: hub.endpoint, repo: REPO, precision: 'fp32', activate: false });
    running.catch(() => {});
    await hub.held(held);
    const part = join(checkpointDir, `${held}.part`);
    await until(async () => existsSync(part) && (await stat(part)).size > 0, 'the first bytes on disk');
    const before = hub.log.length;
    const doneBefore = hub.log.filter((l) => l.status === 200 && l.file !== undefined && l.file !== held).map((l) => l.file);
    await kill(first);
    hub.release(held);
    assert.ok(!existsSync(join(checkpointDir, held)), 'no file under its finished name');
    const kept = (await stat(part)).size;

    const second = await sidecar();
    const res = await second.request<PrepareModelResult>(Methods.prepareModel, { storageDir, endpoint: hub.endpoint, repo: REPO, precision: 'fp32' });
    assert.equal(res.resumedFiles, 1);
    assert.ok(res.converted);
    const after = hub.log.slice(before);
    const ranged = after.filter((l) => l.host === 'cdn' && l.range);
    assert.deepEqual(ranged.map((l) => [l.file, l.range]), [[held, `bytes=${kept}-`]]);
    for (const f of doneBefore) assert.ok(!after.some((l) => l.file === f), `${f} was verified before the kill and is not fetched again`);
    assert.ok((await readFile(join(checkpointDir, held))).equals(files.find((f) => f.path === held)!.content));
    const a = await second.request<AskResult>(Methods.ask, { image, ...question });
    assert.equal(a.model, res.modelDir);
  } finally {
    await hub.close();
  }
});

test('SIGKILL during a conversion: no half-written model is loaded, and the next prepare converts again', { timeout: 180_000 }, async () => {
  const storageDir = join(work, 'storage-conv');
  const first = await sidecar();
  const running = first.request<PrepareModelResult>(Methods.prepareModel, { storageDir, localCheckpoint: ckpt, precision: 'fp32', activate: false });
  running.catch(() => {});
  const models = join(storageDir, 'models');
  // The converter writes into <model>.partial and renames it into place at the end; kill while it is writing.
  let partial = '';
  await until(async () => {
    const names = existsSync(models) ? await readdir(models) : [];
    partial = names.find((n) => n.endsWith('.partial')) ?? '';
    return partial !== '';
  }, 'the conversion to start writing');
  await kill(first);
  const modelDir = join(models, partial.replace(/\.partial$/, ''));
  assert.ok(!existsSync(join(modelDir, 'manifest.json')), 'the conversion finished before the kill: nothing was injected');

  // A sidecar pointed at that folder refuses it (and offers a download) instead of loading what is there.
  const second = await sidecar({ modelPath: modelDir });
  await assert.rejects(second.request(Methods.ask, { image, ...question }), (e: { code: number; message: string }) => e.code === ErrorCodes.ModelUnavailable && /not a converted model folder/.test(e.message));
  const res = await second.request<PrepareModelResult>(Methods.prepareModel, { storageDir, localCheckpoint: ckpt, precision: 'fp32' });
  assert.equal(res.modelDir, modelDir);
  assert.ok(res.converted, 'converted again');
  assert.ok(!existsSync(join(models, partial)), 'the leftover .partial folder is gone');
  const a = await second.request<AskResult>(Methods.ask, { image, ...question });
  const reference = await (await sidecar()).request<AskResult>(Methods.ask, { image, ...question });
  assert.equal(a.text, reference.text, 'the reconverted model answers as the intact one');
});

test('SIGKILL during an ask: the pending request fails at once instead of hanging, and a new sidecar gives the same answer', { timeout: 180_000 }, async () => {
  const first = await sidecar();
  const reference = await first.request<AskResult>(Methods.ask, { image, ...question });
  const stepped = new Promise<void>((resolve) => {
    const sub = first.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => {
      if (p.token === 'killed') {
        sub.dispose();
        resolve();
      }
    });
  });
  const pending = first.request<AskResult>(Methods.ask, { image, ...question, streamToken: 'killed', streamSteps: true });
  const outcome = pending.then(
    () => 'answered',
    () => 'failed',
  );
  await Promise.race([stepped, outcome]);
  await kill(first);
  assert.equal(await Promise.race([outcome, new Promise((r) => setTimeout(() => r('hung'), 5000))]), 'failed');
  const second = await sidecar();
  assert.equal((await second.request<AskResult>(Methods.ask, { image, ...question })).text, reference.text);
});

test('10 asks cancelled in a row: each is RequestCancelled, the queue empties, memory returns to its level, answers stay the same', { timeout: 180_000 }, async () => {
  const s = await sidecar();
  const reference = await s.request<AskResult>(Methods.ask, { image, ...question });
  for (let i = 0; i < 3; i++) await s.request<AskResult>(Methods.ask, { image, ...question });
  const rss0 = (await s.request<StatusResult>(Methods.status, null)).memory.rssBytes;
  const stepsSeen = new Set<string>();
  s.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => void stepsSeen.add(String(p.token)));
  const N = 10; // 100 in a row: npm run test:soak
  for (let i = 0; i < N; i++) {
    const cts = new CancellationTokenSource();
    const token = `c${i}`;
    const p = s.request<AskResult>(Methods.ask, { image, question: `Question ${i}?`, options: { maxNewTokens: 32 }, streamToken: token, streamSteps: true }, cts);
    // Half are cancelled before they start, half once they are running (at their first denoising step).
    if (i % 2 === 1) await until(() => stepsSeen.has(token), `ask ${i} to start`);
    cts.cancel();
    await assert.rejects(p, (e: { code: number }) => e.code === ErrorCodes.RequestCancelled);
  }
  const st = await s.request<StatusResult>(Methods.status, null);
  assert.deepEqual([st.queue.running, st.queue.waitingInteractive, st.queue.waitingHover], [0, 0, 0]);
  assert.ok(st.queue.cancelled >= N / 2, `${st.queue.cancelled} counted as cancelled`);
  const after = await s.request<AskResult>(Methods.ask, { image, ...question });
  assert.equal(after.text, reference.text);
  const rss1 = (await s.request<StatusResult>(Methods.status, null)).memory.rssBytes;
  assert.ok(rss1 - rss0 < 96 * 2 ** 20, `RSS grew by ${((rss1 - rss0) / 2 ** 20).toFixed(1)} MiB over ${N} cancelled asks`);
});
