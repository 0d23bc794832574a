// Truncated and corrupted model files, one at a time, behind one running sidecar: each ask gets ModelUnavailable (the
// extension's "Download Model…" action) with a message that names the damaged file, and the sidecar keeps serving.
import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ErrorCodes, Methods, type AskResult, type StatusResult } from '../server/protocol';
import { startLspServer, type LspClient } from './helpers/lspClient';
import { fixturesDir } from './helpers/paths';
import { ensureTinyLlamaModel } from './helpers/tinyLlamaModel';
import { ensureTinyModel } from './helpers/tinyModel';

let ws: string;
let model: string;
let llamaModel: string;
let s: LspClient;

before(
  async () => {
    model = await ensureTinyModel('fp32');
    llamaModel = await ensureTinyLlamaModel('qwenvl');
    ws = await mkdtemp(join(tmpdir(), 'dvl-damaged-'));
    await writeFile(join(ws, 'ok.png'), await readFile(join(fixturesDir, 'lsp', 'diagram.png')));
    s = await startLspServer({ workspaceFolders: [ws], args: ['--model', model], settings: { executionProvider: 'cpu' } });
  },
  { timeout: 180_000 },
);

after(async () => {
  await s?.close();
  await rm(ws, { recursive: true, force: true });
});

type Damage = 'truncated' | 'overwritten';

/** A copy of the model with one file damaged: cut to half its size, or 16 bytes in its first third overwritten. */
async function damagedCopy(file: string, how: Damage): Promise<string> {
  const dir = join(ws, `${file}-${how}`);
  await cp(model, dir, { recursive: true });
  const path = join(dir, file);
  const size = (await stat(path)).size;
  if (how === 'truncated') {
    await truncate(path, Math.floor(size / 2));
  } else {
    const fh = await open(path, 'r+');
    await fh.write(Buffer.alloc(16, 0xff), 0, 16, Math.floor(size / 3));
    await fh.close();
  }
  return dir;
}

async function useModel(dir: string): Promise<void> {
  await s.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { modelPath: dir, executionProvider: 'cpu' } } });
}

const ask = () => s.request<AskResult>(Methods.ask, { image: { path: join(ws, 'ok.png') }, question: 'What is shown?', options: { maxNewTokens: 8 } });

// Overwritten bytes inside a weights file (.onnx.data, embeddings.bin) are weights like any others: no format check
// can see them, so only truncation is injected there (see docs/reliability.md).
const CASES: [string, Damage[]][] = [
  ['manifest.json', ['truncated', 'overwritten']],
  ['decoder.onnx', ['truncated', 'overwritten']],
  ['decoder.onnx.data', ['truncated']],
  ['lm_head.onnx', ['truncated', 'overwritten']],
  ['lm_head.onnx.data', ['truncated']],
  ['vision.onnx', ['truncated', 'overwritten']],
  ['vision.onnx.data', ['truncated']],
  ['embeddings.bin', ['truncated']],
  ['tokenizer.json', ['truncated', 'overwritten']],
];

for (const [file, damages] of CASES) {
  for (const how of damages) {
    test(`${file} ${how}: ModelUnavailable naming the file; the sidecar keeps serving`, { timeout: 120_000 }, async () => {
      const dir = await damagedCopy(file, how);
      await useModel(dir);
      await assert.rejects(ask(), (e: { code: number; message: string }) => {
        assert.equal(e.code, ErrorCodes.ModelUnavailable, e.message);
        assert.ok(e.message.includes(join(dir, file)), `names ${file}: ${e.message}`);
        return true;
      });
      const st = await s.request<StatusResult>(Methods.status, null);
      assert.equal(typeof st.queue.running, 'number');
    });
  }
}

/**
 * The GGUF decoder of a folder converted with `--decoder both` (the sidecar's default backend, auto, runs it with
 * llama.cpp), damaged the ways a disk or a bad copy damages it and the ways llama.cpp's loader handles worst: some
 * headers make it abort the whole process (GGML_ASSERT) instead of failing, so every one must be refused before it.
 */
const GGUF_DAMAGE: [string, (b: Buffer) => Buffer][] = [
  ['truncated to half', (b) => b.subarray(0, b.length >> 1)],
  ['header bytes overwritten (tensor and metadata counts)', (b) => b.fill(0xff, 8, 24)],
  ['a tensor whose offset points beyond the file', (b) => (b.writeBigUInt64LE(BigInt(b.length) * 2n, tensorInfoAt(b, 'output_norm.weight', 1) + 4 + 8 + 4), b)],
  ['a tensor whose size runs beyond the file', (b) => (b.writeBigUInt64LE(1n << 40n, tensorInfoAt(b, 'blk.1.ffn_down.weight', 2) + 4), b)],
  // llama.cpp asserts (and aborts the process) on a layer count outside 1..512.
  ['a layer count of 0', (b) => (b.writeUInt32LE(0, metadataValueAt(b, 'qwen2.block_count')), b)],
];

/** Offset of a tensor info's dimension count (after its name); `dims` only checks the file is the expected one. */
function tensorInfoAt(b: Buffer, name: string, dims: number): number {
  const at = b.indexOf(lengthPrefixed(name)) + 8 + Buffer.byteLength(name);
  assert.equal(b.readUInt32LE(at), dims, `${name} found`);
  return at;
}

/** Offset of a u32 metadata value (after its key and type). */
function metadataValueAt(b: Buffer, key: string): number {
  const at = b.indexOf(lengthPrefixed(key)) + 8 + Buffer.byteLength(key);
  assert.equal(b.readUInt32LE(at), 4, `${key} is a u32`);
  return at + 4;
}

function lengthPrefixed(s: string): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(s)));
  return Buffer.concat([len, Buffer.from(s)]);
}

for (const [how, damage] of GGUF_DAMAGE) {
  test(`decoder.gguf, ${how}: ModelUnavailable naming the file; llama.cpp never sees it; the sidecar keeps serving`, { timeout: 120_000 }, async () => {
    const dir = join(ws, `gguf-${how.replace(/\W+/g, '-')}`);
    await mkdir(dir);
    // Links to the intact folder's files, except the damaged GGUF (78 MB: one copy at a time, removed afterwards).
    for (const f of await readdir(llamaModel)) if (f !== 'decoder.gguf') await symlink(join(llamaModel, f), join(dir, f));
    await copyFile(join(llamaModel, 'decoder.gguf'), join(dir, 'decoder.gguf'));
    await writeFile(join(dir, 'decoder.gguf'), damage(await readFile(join(dir, 'decoder.gguf'))));
    try {
      await useModel(dir);
      await assert.rejects(ask(), (e: { code: number; message: string }) => {
        assert.equal(e.code, ErrorCodes.ModelUnavailable, e.message);
        assert.ok(e.message.includes(join(dir, 'decoder.gguf')), `names decoder.gguf: ${e.message}`);
        return true;
      });
      const st = await s.request<StatusResult>(Methods.status, null);
      assert.equal(typeof st.queue.running, 'number');
      assert.equal(s.proc.exitCode, null);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('after all of that, the intact model answers in the same sidecar', { timeout: 120_000 }, async () => {
  await useModel(model);
  const ok = await ask();
  assert.equal(ok.model, model);
  assert.equal(ok.stats?.generatedTokens, 8);
  await useModel(llamaModel);
  const viaLlama = await ask();
  assert.equal(viaLlama.model, llamaModel);
  assert.equal(viaLlama.stats?.generatedTokens, 8);
  assert.equal(s.proc.exitCode, null);
});
