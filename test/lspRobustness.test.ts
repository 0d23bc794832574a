import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { ErrorCodes, MAX_IMAGE_BYTES, Methods, type AskResult, type PartialAnswerParams, type StatusResult } from '../server/protocol';
import { CancellationTokenSource, startLspServer, type LspClient } from './helpers/lspClient';
import { fixturesDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';
import { PNG_SIGNATURE, pngChunk } from './helpers/png';

let ws: string;
let model: string;
let png: Buffer;
const servers: LspClient[] = [];

before(async () => {
  model = await ensureTinyModel('fp32');
  ws = await mkdtemp(join(tmpdir(), 'dvl-robust-'));
  png = await readFile(join(fixturesDir, 'lsp', 'diagram.png'));
  await writeFile(join(ws, 'ok.png'), png);
});

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(ws, { recursive: true, force: true });
});

async function server(settings: Record<string, unknown> = {}, args = ['--model', model]): Promise<LspClient> {
  const s = await startLspServer({ workspaceFolders: [ws], args, settings: { executionProvider: 'cpu', ...settings } });
  servers.push(s);
  return s;
}

/** A well-formed PNG with the given header dimensions (pixel data for 1×1 only). */
function pngWithSize(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.from([0, 1, 2, 3]))), pngChunk('IEND', Buffer.alloc(0))]);
}
function flip(buf: Buffer, at: number): Buffer {
  const b = Buffer.from(buf);
  b[at] ^= 0xff;
  return b;
}

test('≥ 30 malformed images each get an error response, then a valid ask still succeeds', async () => {
  const s = await server();
  const jpeg = await sharp(png).flatten({ background: '#fff' }).jpeg().toBuffer();
  const gif = await sharp(png).gif().toBuffer();
  const webp = await sharp(png).webp().toBuffer();
  await writeFile(join(ws, 'empty.png'), '');
  await writeFile(join(ws, 'text.png'), 'hello, not an image');
  // One byte over the one image limit (a sparse file: the server must refuse it by its size, before reading).
  await writeFile(join(ws, 'huge.png'), '');
  await truncate(join(ws, 'huge.png'), MAX_IMAGE_BYTES + 1);
  await writeFile(join(ws, 'trunc.png'), png.subarray(0, 100));
  await mkdir(join(ws, 'dir.png'), { recursive: true });
  const b = (buf: Buffer | string) => ({ bytes: Buffer.from(buf).toString('base64') });

  const cases: [string, unknown][] = [
    ['empty bytes', { bytes: '' }],
    ...[8, 16, 24, 33, 41, 60, 90, 120, 160, 180, 200].map((n): [string, unknown] => [`png cut at ${n}`, b(png.subarray(0, n))]),
    ['png IHDR flipped', b(flip(png, 17))],
    ['png IDAT flipped', b(flip(png, png.length - 30))],
    ['random bytes', b(Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7919) & 0xff)))],
    ['plain text', b('just some text')],
    ['json', b('{"image": true}')],
    ['pdf', b('%PDF-1.4\n1 0 obj\n<<>>\nendobj\n')],
    ['html', b('<!doctype html><html><body>hi</body></html>')],
    ['gif header only', b('GIF89a')],
    ['gif cut', b(gif.subarray(0, gif.length >> 1))],
    ['jpeg SOI only', b(Buffer.from([0xff, 0xd8, 0xff]))],
    ['jpeg cut', b(jpeg.subarray(0, jpeg.length >> 1))],
    ['webp cut', b(webp.subarray(0, 20))],
    ['riff not webp', b(Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4, 1), Buffer.from('WAVEfmt ')]))],
    ['decompression bomb', b(pngWithSize(60000, 60000))],
    ['zero width png', b(pngWithSize(0, 10))],
    ['broken svg', b('<svg xmlns="http://www.w3.org/2000/svg"><rect')],
    ['gzip garbage', b(gzipSync(Buffer.from('not svg at all')))],
    ['bmp cut', b(Buffer.from([0x42, 0x4d, 1, 2, 3, 4, 5]))],
    ['tiff header only', b(Buffer.from([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0]))],
    ['oversized bytes', b(Buffer.alloc(1024 * 1024 + 10, 7))],
    ['not base64', { bytes: '@@@not base64@@@' }],
    ['empty file', { path: join(ws, 'empty.png') }],
    ['text file named .png', { path: join(ws, 'text.png') }],
    ['oversized file', { path: join(ws, 'huge.png') }],
    ['truncated file', { path: join(ws, 'trunc.png') }],
    ['directory', { path: join(ws, 'dir.png') }],
    ['missing file', { path: join(ws, 'missing.png') }],
    ['outside workspace', { path: join(tmpdir(), 'x.png') }],
    ['relative path', { path: 'ok.png' }],
    ['http uri', { uri: 'http://example.com/a.png' }],
    ['no image', null],
  ];
  assert.ok(cases.length >= 30);
  const expected = new Set<number>([ErrorCodes.InvalidImage, ErrorCodes.InvalidParams, ErrorCodes.PathOutsideWorkspace]);
  for (const [name, image] of cases) {
    await assert.rejects(
      s.request(Methods.ask, { image, question: 'What is this?', options: { maxNewTokens: 8 } }),
      (e: { code: number; message: string }) => {
        assert.ok(expected.has(e.code), `${name}: code ${e.code} (${e.message})`);
        assert.ok(e.message.length > 0);
        return true;
      },
      name,
    );
  }
  const ok = await s.request<AskResult>(Methods.ask, { image: { path: join(ws, 'ok.png') }, question: 'What is this?', options: { maxNewTokens: 8 } });
  assert.equal(typeof ok.text, 'string');
  assert.equal(ok.stats!.generatedTokens, 8);
});

test('20 concurrent asks are all answered; a cancelled one returns RequestCancelled and the next ask is unaffected', async () => {
  const s = await server();
  const image = { path: join(ws, 'ok.png') };
  const reference = await s.request<AskResult>(Methods.ask, { image, question: 'Cancel me?', options: { maxNewTokens: 16 } });

  const asks = Array.from({ length: 20 }, (_, i) =>
    s.request<AskResult>(Methods.ask, { image, question: `Question ${i % 4}?`, options: { maxNewTokens: 8 } }),
  );
  const cts = new CancellationTokenSource();
  const firstStep = new Promise<void>((resolve) => {
    const sub = s.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => {
      if (p.token === 'victim') {
        sub.dispose();
        resolve();
      }
    });
  });
  // Interactive asks are FIFO, so the victim starts after the 20; cancel it on its first denoising step.
  const victim = s.request<AskResult>(Methods.ask, { image, question: 'Cancel me?', options: { maxNewTokens: 16 }, streamToken: 'victim', streamSteps: true }, cts);
  const answers = await Promise.all(asks);
  assert.equal(answers.length, 20);
  for (const [i, a] of answers.entries()) assert.equal(a.text, answers[i % 4].text, 'same question, same answer');
  await firstStep;
  cts.cancel();
  await assert.rejects(victim, (e: { code: number }) => e.code === ErrorCodes.RequestCancelled);
  const next = await s.request<AskResult>(Methods.ask, { image, question: 'Cancel me?', options: { maxNewTokens: 16 } });
  assert.equal(next.text, reference.text);
  const st = await s.request<StatusResult>(Methods.status, null);
  assert.ok(st.queue.cancelled >= 1);
  assert.equal(st.queue.running, 0);
});

test('missing or corrupt model: a clear error, the server keeps serving, and a config change reloads', async () => {
  const s = await server({}, ['--model', join(ws, 'no-such-model')]);
  const image = { path: join(ws, 'ok.png') };
  await assert.rejects(s.request(Methods.ask, { image, question: 'q' }), (e: { code: number; message: string }) => {
    assert.equal(e.code, ErrorCodes.ModelUnavailable);
    assert.match(e.message, /manifest/);
    return true;
  });
  const st = await s.request<StatusResult>(Methods.status, null);
  assert.equal(st.model.state, 'error');

  const broken = join(ws, 'broken-model');
  await cp(model, broken, { recursive: true });
  await truncate(join(broken, 'decoder.onnx'), 100);
  await s.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { modelPath: broken, executionProvider: 'cpu' } } });
  await assert.rejects(s.request(Methods.ask, { image, question: 'q', options: { maxNewTokens: 8 } }), (e: { code: number }) => e.code === ErrorCodes.ModelUnavailable);

  await s.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { modelPath: model, executionProvider: 'cpu' } } });
  const ok = await s.request<AskResult>(Methods.ask, { image, question: 'q', options: { maxNewTokens: 8 } });
  assert.equal(ok.model, model);
});

test('an execution provider that cannot start falls back to CPU and says so', async () => {
  const s = await server({ executionProvider: 'cuda' });
  await copyFile(join(ws, 'ok.png'), join(ws, 'ok2.png'));
  const ok = await s.request<AskResult>(Methods.ask, { image: { path: join(ws, 'ok2.png') }, question: 'q', options: { maxNewTokens: 8 } });
  assert.equal(ok.stats!.generatedTokens, 8);
  const st = await s.request<StatusResult>(Methods.status, null);
  assert.equal(st.provider.requested, 'cuda');
  // Holds on machines with and without CUDA: either it runs, or the engine's own fallback reason is shown.
  if (st.provider.inUse === 'cpu') assert.match(st.provider.reason ?? '', /^cuda unavailable: .+; fell back to cpu$/);
  else assert.equal(st.provider.inUse, 'cuda');
});
