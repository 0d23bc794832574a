import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ErrorCodes, Methods, SERVER_API_KEY_ENV, type AskResult, type PartialAnswerParams, type StatusResult } from '../server/protocol';
import { FakeOpenAI } from './helpers/fakeOpenAI';
import { startServe } from './helpers/httpServe';
import { startLspServer, type LspClient } from './helpers/lspClient';
import { fixturesDir, repoRoot } from './helpers/paths';

// The sidecar pointed at an OpenAI-compatible server on loopback: every answer comes from there, streamed chunk by
// chunk as block partials, with the key sent as a Bearer token and never written anywhere the user could see it.
const KEY = 'sk-test-9f8e7d6c5b4a-never-log-me';
const QUESTION = 'What is in this picture?';
let ws: string;
let image: string;
let fake: FakeOpenAI;
let client: LspClient;

/** Everything the sidecar said: stderr and every notification (log messages, status) it sent. */
function everythingSaid(): string {
  return client.stderr() + JSON.stringify(client.notifications);
}

async function ask(streamToken: string): Promise<{ result: AskResult; partials: PartialAnswerParams[] }> {
  const partials: PartialAnswerParams[] = [];
  const sub = client.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => {
    if (p.token === streamToken) partials.push(p);
  });
  try {
    const result = await client.request<AskResult>(Methods.ask, { image: { path: image }, question: QUESTION, streamToken });
    return { result, partials };
  } finally {
    sub.dispose();
  }
}

before(async () => {
  ws = await mkdtemp(join(tmpdir(), 'dvl-remote-'));
  await mkdir(join(ws, 'img'), { recursive: true });
  image = join(ws, 'img', 'diagram.png');
  await copyFile(join(fixturesDir, 'lsp', 'diagram.png'), image);
  fake = await new FakeOpenAI({ apiKey: KEY, chunkDelayMs: 30 }).start();
  client = await startLspServer({
    workspaceFolders: [ws],
    env: { [SERVER_API_KEY_ENV]: KEY },
    settings: { server: { url: fake.url }, hover: { enabled: true } },
  });
});

after(async () => {
  await client?.close();
  await fake?.stop();
  if (ws) await rm(ws, { recursive: true, force: true });
});

test('an ask is answered by the remote server, streamed chunk by chunk, with the key as a Bearer token', async () => {
  const { result, partials } = await ask('remote-1');
  assert.equal(result.text, 'A red circle above a blue square.');
  assert.equal(result.server, fake.url);
  assert.equal(result.model, 'fake-vl');
  assert.equal(result.stats, undefined, 'another OpenAI-compatible server has no DiffusionVL stats');
  assert.deepEqual(
    partials.map((p) => [p.kind, p.block, p.text]),
    [
      ['block', 0, 'A red '],
      ['block', 1, 'A red circle '],
      ['block', 2, 'A red circle above a blue square.'],
    ],
  );
  const chat = fake.seen.find((r) => r.path === '/v1/chat/completions');
  assert.ok(chat?.body, 'the server got the question');
  assert.equal(chat.authorization, `Bearer ${KEY}`);
  assert.equal(chat.body.stream, true);
  assert.equal(chat.body.model, 'fake-vl');
  assert.equal(chat.body.diffusionvl, undefined, 'no DiffusionVL-only fields for a server that is not one');
  const [message] = chat.body.messages as { role: string; content: { type: string; text?: string; image_url?: { url: string } }[] }[];
  assert.equal(message.role, 'user');
  assert.equal(message.content.find((c) => c.type === 'text')?.text, QUESTION);
  const png = (await readFile(image)).toString('base64');
  assert.equal(message.content.find((c) => c.type === 'image_url')?.image_url?.url, `data:image/png;base64,${png}`);

  const status = await client.request<StatusResult>(Methods.status, null);
  assert.deepEqual(status.remote, { url: fake.url, hasKey: true, allowed: true, model: 'fake-vl', state: 'ok' });
  assert.ok(!JSON.stringify(status).includes(KEY));
});

test('hovers and alt text go to the remote server too', async () => {
  const doc = join(ws, 'notes.md');
  const uri = await client.openDocument(doc, 'markdown', '# Notes\n\n![](img/diagram.png)\n');
  const before = fake.seen.length;
  const hover = await client.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 2, character: 6 } });
  assert.ok(hover, 'a hover');
  assert.match(hover.contents.value, /A red circle above a blue square\./);
  assert.ok(fake.seen.slice(before).some((r) => r.path === '/v1/chat/completions'), 'asked the remote server');
});

test('a server that goes away gives a clear error; the next ask after it is back succeeds', async () => {
  const port = fake.port;
  await fake.stop();
  await assert.rejects(ask('remote-gone'), (err: { code: number; message: string }) => {
    assert.equal(err.code, ErrorCodes.RemoteUnavailable);
    assert.match(err.message, new RegExp(`cannot reach ${fake.url.replace(/[.]/g, '\\.')}`));
    return true;
  });
  const down = await client.request<StatusResult>(Methods.status, null);
  assert.equal(down.remote?.state, 'unreachable');
  assert.match(down.remote?.error ?? '', /cannot reach/);

  fake = await new FakeOpenAI({ apiKey: KEY, port }).start();
  const { result } = await ask('remote-back');
  assert.equal(result.text, 'A red circle above a blue square.');
  assert.equal((await client.request<StatusResult>(Methods.status, null)).remote?.state, 'ok');
});

test('a wrong key is refused in words that never contain a key', async () => {
  const strict = await new FakeOpenAI({ apiKey: 'another-key' }).start();
  try {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: strict.url } } } });
    await assert.rejects(ask('remote-401'), (err: { code: number; message: string }) => {
      assert.equal(err.code, ErrorCodes.RemoteUnavailable);
      assert.match(err.message, /refused the API key \(HTTP 401: Incorrect API key provided\.\)/);
      return true;
    });
    assert.equal((await client.request<StatusResult>(Methods.status, null)).remote?.state, 'refused');
  } finally {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: fake.url } } } });
    await strict.stop();
  }
  assert.ok(everythingSaid().includes('refused the API key'), 'the failure was logged');
  assert.ok(!everythingSaid().includes(KEY), 'the key appears in no log, message or status');
});

test('nothing is sent to a non-loopback server before the user allowed it', async () => {
  const seen = fake.seen.length;
  await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: 'http://192.0.2.1:8080', allowed: false } } } });
  try {
    await assert.rejects(ask('remote-consent'), (err: { code: number; message: string }) => {
      assert.equal(err.code, ErrorCodes.RemoteUnavailable);
      assert.match(err.message, /images are not sent to http:\/\/192\.0\.2\.1:8080 until you allow it/);
      return true;
    });
    const status = await client.request<StatusResult>(Methods.status, null);
    assert.equal(status.remote?.allowed, false);
    assert.equal(fake.seen.length, seen);
  } finally {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: fake.url } } } });
  }
});

test('a DiffusionVL server: its options are sent and its stats ride along', async () => {
  const stats = {
    generatedTokens: 24,
    forwards: { prefill: 1, denoise: 9, commit: 0, total: 10 },
    tokensPerForward: 2.4,
    timings: { queueMs: 1, loadMs: 0, visionMs: 5, prefillMs: 6, decodeMs: 30, totalMs: 42 },
    cache: { visionHit: false, prefixHit: false },
  };
  const dvl = await new FakeOpenAI({ model: 'diffusionvl-3b', ownedBy: 'diffusionvl', extra: stats }).start();
  try {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: dvl.url }, steps: 4, remasking: 'dynamic', confidenceThreshold: 0.8 } } });
    const { result } = await ask('remote-dvl');
    assert.equal(result.model, 'diffusionvl-3b');
    assert.equal(result.stats?.forwards.total, 10);
    assert.equal(result.stats?.tokensPerForward, 2.4);
    const chat = dvl.seen.find((r) => r.path === '/v1/chat/completions');
    assert.deepEqual(chat?.body?.diffusionvl, { steps: 4, remasking: 'dynamic', threshold: 0.8 });
    assert.equal(chat?.authorization, `Bearer ${KEY}`);
  } finally {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: fake.url }, steps: null, remasking: null, confidenceThreshold: null } } });
    await dvl.stop();
  }
});

test('a server URL with credentials in it is refused without repeating them', async () => {
  await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: 'http://bob:hunter2@example.com:8080' } } } });
  const status = await client.request<StatusResult>(Methods.status, null);
  assert.equal(status.remote?.url, fake.url, 'the previous URL stays');
  assert.match(everythingSaid(), /diffusionvl\.server\.url must be an http:\/\/ or https:\/\/ URL without a user name, password or query/);
  assert.ok(!everythingSaid().includes('hunter2'));
});

test('clearing server.url goes back to the local model', async () => {
  await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: '' } } } });
  const status = await client.request<StatusResult>(Methods.status, null);
  assert.equal(status.remote, undefined);
  assert.ok(status.model.dir, 'the local (embedded) model answers again');
});

test('with `diffusionvl serve --http` answering: the local model\'s own answer, block by block, with its stats', async () => {
  const keyFile = join(ws, 'http.key');
  const httpKey = 'dvl-http-key-0123456789abcdef';
  await writeFile(keyFile, `${httpKey}\n`);
  const chart = join(ws, 'img', 'chart.png');
  await copyFile(join(repoRoot, 'media', 'examples', 'chart-1.png'), chart);
  const http = await startServe(['--api-key-file', keyFile]);
  const sidecar = { url: http.url, client: await startLspServer({ workspaceFolders: [ws], env: { [SERVER_API_KEY_ENV]: httpKey }, settings: { server: { url: http.url } } }) };
  try {
    const params = { image: { path: chart }, question: 'Which bar is the tallest?', streamToken: 'http-1' };
    const partials: PartialAnswerParams[] = [];
    sidecar.client.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => void partials.push(p));
    const remote = await sidecar.client.request<AskResult>(Methods.ask, params);
    assert.equal(remote.server, sidecar.url);
    assert.equal(remote.model, 'default', 'the model id serve --http lists');
    assert.ok(remote.stats && remote.stats.forwards.total > 0 && remote.stats.generatedTokens > 0, 'the DiffusionVL stats rode along');
    assert.ok(partials.length >= 1 && partials.every((p, i) => p.kind === 'block' && p.block === i), 'block partials in order');
    assert.equal(partials.at(-1)?.text, remote.text);

    // The same question to the local (embedded) model of this sidecar gives the same answer.
    await sidecar.client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl: { server: { url: '' } } } });
    const local = await sidecar.client.request<AskResult>(Methods.ask, { ...params, streamToken: 'http-2' });
    assert.equal(local.server, undefined);
    assert.equal(remote.text, local.text);
    assert.equal(remote.stats?.generatedTokens, local.stats?.generatedTokens);
    assert.ok(!(sidecar.client.stderr() + JSON.stringify(sidecar.client.notifications) + http.log()).includes(httpKey), 'the key is in no log');
  } finally {
    await sidecar.client.close();
    await http.close();
  }
});
