import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflateSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { MAX_BODY_BYTES } from '../server/http/limits';
import { postJson, raw, startServe, type Served } from './helpers/httpServe';
import { repoRoot } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';
import { PNG_SIGNATURE, pngChunk } from './helpers/png';

// `diffusionvl serve --http` as its users run it: the built CLI in its own process, spoken to over loopback by the
// official `openai` SDK and by raw HTTP.
const cli = join(repoRoot, 'bin', 'diffusionvl.js');
const example = join(repoRoot, 'media', 'examples', 'chart-1.png');
const QUESTION = 'Which bar is the tallest?';
const png = readFileSync(example);
const dataUrl = `data:image/png;base64,${png.toString('base64')}`;
const KEY = 'test-key-0123456789-abcdef';

let work: string;
let demo: Served;
let tiny: Served;
let keyed: Served;
let tinyModel: string;

const userTurn = (text: string, url = dataUrl) => ({ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url } }, { type: 'text' as const, text }] });
const sdk = (s: Served, apiKey = 'unused') => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'dvl-http-'));
  writeFileSync(join(work, 'key'), `${KEY}\n`);
  tinyModel = await ensureTinyModel('fp32');
  [demo, tiny, keyed] = await Promise.all([
    // K = 3: a value `auto` never picks, so the stats show the flag took effect (the answer is the same at any K).
    startServe(['--verify-steps', '3']),
    // The random-weight tiny model never emits end-of-text: its answers run as long as they are allowed to.
    startServe(['--model', tinyModel, '--max-queue', '1', '--request-timeout', '1']),
    startServe(['--api-key-file', join(work, 'key'), '--cors-origin', 'http://allowed.test']),
  ]);
});

after(async () => {
  await Promise.all([demo?.close(), tiny?.close(), keyed?.close()]);
  rmSync(work, { recursive: true, force: true });
});

test('the openai SDK gets the same answer as `diffusionvl ask`, with usage and the model stats', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [cli, 'ask', example, QUESTION], { cwd: repoRoot });
  const expected = stdout.trim();
  assert.equal(expected, 'purple');
  const r = await sdk(demo).chat.completions.create({ model: 'default', messages: [userTurn(QUESTION)] });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'default');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const stats = (r as unknown as { diffusionvl: { generatedTokens: number; promptTokens: number; forwards: { total: number }; tokensPerForward: number; verifySteps: number; timings: { totalMs: number } } }).diffusionvl;
  assert.equal(stats.verifySteps, 3, 'serve --http --verify-steps 3');
  assert.equal(r.usage?.completion_tokens, stats.generatedTokens);
  assert.equal(r.usage?.prompt_tokens, stats.promptTokens);
  assert.ok(stats.promptTokens > 20, 'the prompt counts its image rows');
  assert.ok(stats.forwards.total > 0 && stats.tokensPerForward > 0 && stats.timings.totalMs > 0);
});

test('streaming: one chunk per committed block, then finish_reason and usage, then [DONE]', async () => {
  const client = sdk(tiny);
  const opts = { model: 'tiny-model', messages: [userTurn('What is this?')], max_tokens: 32, diffusionvl: { steps: 4 } };
  const modelId = (await client.models.list()).data[0].id;
  opts.model = modelId;
  const whole = await client.chat.completions.create(opts as OpenAI.ChatCompletionCreateParamsNonStreaming);
  const stream = await client.chat.completions.create({ ...opts, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
  const contents: string[] = [];
  let final: OpenAI.ChatCompletionChunk | undefined;
  for await (const c of stream) {
    if (c.choices[0].finish_reason) final = c;
    else contents.push(c.choices[0].delta.content ?? '');
  }
  // One chunk per committed block: blocks lie on the model's block grid, which the prompt's end need not meet.
  const B = (JSON.parse(readFileSync(join(tinyModel, 'manifest.json'), 'utf8')) as { blockSize: number }).blockSize;
  const P = (whole as unknown as { diffusionvl: { promptTokens: number } }).diffusionvl.promptTokens;
  assert.equal(contents.length, Math.ceil((P + 32) / B) - Math.floor(P / B), JSON.stringify(contents));
  assert.ok(contents.every((t) => t.length > 0));
  assert.equal(contents.join(''), whole.choices[0].message.content);
  assert.equal(final?.choices[0].finish_reason, 'length');
  assert.equal(final?.usage?.completion_tokens, 32);
  assert.equal((final as unknown as { diffusionvl: { generatedTokens: number } }).diffusionvl.generatedTokens, 32);
  // The wire format itself: data events ending with [DONE].
  const rawStream = await postJson(tiny.url, { ...opts, stream: true, max_tokens: 8 });
  assert.equal(rawStream.status, 200);
  assert.match(String(rawStream.headers['content-type']), /^text\/event-stream/);
  assert.match(rawStream.text, /^data: \{.*\n\n(data: \{.*\n\n)+data: \[DONE\]\n\n$/s);
});

test('stop sequences end the answer before them, streamed or not', async () => {
  const base = { messages: [userTurn('What is this?')], max_tokens: 64 };
  const whole = (await postJson(tiny.url, base)).json() as unknown as { choices: { message: { content: string } }[] };
  const text = whole.choices[0].message.content;
  // A stop sequence from the second half of the answer (the tiny model's text is arbitrary but deterministic).
  const at = text.indexOf(' ', Math.floor(text.length / 2));
  assert.ok(at > 0, text);
  const stop = text.slice(at, at + 6);
  const expected = text.slice(0, text.indexOf(stop));
  const cut = await postJson(tiny.url, { ...base, stop });
  const c = cut.json() as unknown as { choices: { message: { content: string }; finish_reason: string }[] };
  assert.equal(c.choices[0].message.content, expected);
  assert.equal(c.choices[0].finish_reason, 'stop');
  const streamed = await postJson(tiny.url, { ...base, stop: [stop, 'never-appears'], stream: true });
  const events = streamed.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; finish_reason: string | null }[] });
  assert.equal(events.map((e) => e.choices[0].delta.content ?? '').join(''), expected);
  assert.equal(events.at(-1)!.choices[0].finish_reason, 'stop');
  assert.equal((await postJson(tiny.url, { ...base, stop: [''] })).status, 400);
});

test('follow-ups are answered as the Ask panel answers them: the conversation\'s image, the last question', async () => {
  const client = sdk(demo);
  const followUp = await client.chat.completions.create({
    model: 'default',
    messages: [
      { role: 'system', content: 'You answer briefly.' },
      userTurn('How many bars are there?'),
      { role: 'assistant', content: 'four' },
      { role: 'user', content: QUESTION },
    ],
  });
  const single = await client.chat.completions.create({ model: 'default', messages: [userTurn(QUESTION)] });
  assert.equal(followUp.choices[0].message.content, single.choices[0].message.content);
  assert.equal(followUp.choices[0].message.content, 'purple');
  // A question without an image is answered as text (no image rows in the prompt).
  const text = await client.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: QUESTION }], max_tokens: 8 });
  assert.equal(typeof text.choices[0].message.content, 'string');
  assert.ok((text as unknown as { diffusionvl: { promptTokens: number } }).diffusionvl.promptTokens < (single as unknown as { diffusionvl: { promptTokens: number } }).diffusionvl.promptTokens);
  // Two images in one conversation reach the model as two images (more prompt rows than one).
  const two = await postJson(demo.url, { messages: [userTurn('Compare the images.'), { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl } }, { type: 'text', text: QUESTION }] }], max_tokens: 8 });
  assert.equal(two.status, 200, two.text);
  const twoStats = two.json().diffusionvl as { promptTokens: number };
  const oneStats = (single as unknown as { diffusionvl: { promptTokens: number } }).diffusionvl;
  assert.ok(twoStats.promptTokens > oneStats.promptTokens + 10, `${twoStats.promptTokens} vs ${oneStats.promptTokens}`);
});

test('/v1/models lists the served model; an unknown model is 404', async () => {
  const client = sdk(demo);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['default']);
  assert.equal((await client.models.retrieve('default')).id, 'default');
  await assert.rejects(client.models.retrieve('gpt-4o'), (e: unknown) => e instanceof OpenAI.NotFoundError);
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [userTurn(QUESTION)] }), (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.param === 'model');
});

test('/health reports the model state, the provider and the queue', async () => {
  const r = await raw(demo.url, { path: '/health' });
  assert.equal(r.status, 200);
  const h = r.json() as unknown as { status: string; model: { id: string; state: string }; provider: { requested: string; inUse: string }; queue: { completed: number; maxWaiting: number } };
  assert.equal(h.status, 'ok');
  assert.equal(h.model.id, 'default');
  assert.equal(h.model.state, 'ready');
  assert.equal(h.provider.requested, 'auto');
  assert.ok(typeof h.provider.inUse === 'string');
  assert.ok(h.queue.completed >= 1);
  assert.equal(h.queue.maxWaiting, 16);
});

test('an API key is required when configured, compared exactly, and never written to the log', async () => {
  const body = { messages: [userTurn(QUESTION)] };
  const none = await postJson(keyed.url, body);
  assert.equal(none.status, 401);
  assert.equal(none.json().error.code, 'missing_api_key');
  assert.equal(none.json().error.type, 'authentication_error');
  const wrong = await postJson(keyed.url, body, { authorization: `Bearer ${KEY}x` });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json().error.code, 'invalid_api_key');
  assert.equal((await raw(keyed.url, { path: '/health' })).status, 401);
  await assert.rejects(sdk(keyed, 'wrong-key-wrong-key').models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  const r = await sdk(keyed, KEY).chat.completions.create({ model: 'default', messages: [userTurn(QUESTION)] });
  assert.equal(r.choices[0].message.content, 'purple');
  assert.ok(!keyed.log().includes(KEY.slice(0, 12)), 'the key is not in the log');
  await waitFor(() => /POST \/v1\/chat\/completions 200/.test(keyed.log()));
});

test('CORS only for the named origin; no CORS headers otherwise', async () => {
  const pre = await raw(keyed.url, { method: 'OPTIONS', path: '/v1/chat/completions', headers: { origin: 'http://allowed.test', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], 'http://allowed.test');
  const other = await raw(keyed.url, { method: 'OPTIONS', path: '/v1/chat/completions', headers: { origin: 'http://evil.test' } });
  assert.equal(other.status, 405);
  assert.equal(other.headers['access-control-allow-origin'], undefined);
  const plain = await raw(demo.url, { path: '/v1/models', headers: { origin: 'http://allowed.test' } });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['access-control-allow-origin'], undefined, 'a server without --cors-origin sends no CORS headers');
  // Without a key, only requests addressed to localhost (a rebound DNS name is refused).
  const rebound = await raw(demo.url, { path: '/v1/models', headers: { host: 'evil.test' } });
  assert.equal(rebound.status, 403);
});

test('refuses to listen on a non-loopback address without an API key, and rejects short keys', async () => {
  const run = (args: string[]) => promisify(execFile)(process.execPath, [cli, 'serve', '--http', ...args], { cwd: repoRoot });
  await assert.rejects(run(['--host', '0.0.0.0', '--port', '0']), (e: { code: number; stderr: string }) => e.code === 2 && /without an API key/.test(e.stderr));
  writeFileSync(join(work, 'short'), 'abc\n');
  await assert.rejects(run(['--api-key-file', join(work, 'short'), '--port', '0']), (e: { code: number; stderr: string }) => e.code === 2 && /at least 16/.test(e.stderr) && !e.stderr.includes('abc'));
});

test('no model that can load: 503 with the reason, and /health says so', async () => {
  const broken = join(work, 'broken-model');
  mkdirSync(broken);
  writeFileSync(join(broken, 'manifest.json'), '{"not": "a manifest"}');
  const s = await startServe(['--model', broken]);
  try {
    const r = await postJson(s.url, { messages: [userTurn(QUESTION)] });
    assert.equal(r.status, 503);
    assert.equal(r.json().error.code, 'model_unavailable');
    assert.match(r.json().error.message, /cannot load the model/);
    const h = await raw(s.url, { path: '/health' });
    assert.equal(h.status, 503);
    assert.equal((h.json() as unknown as { model: { state: string } }).model.state, 'error');
  } finally {
    await s.close();
  }
});

test('a client that disconnects mid-stream cancels its run; a full queue answers 429 with Retry-After', async () => {
  const messages = [userTurn('What is this?')];
  const t0 = Date.now();
  const short = await postJson(tiny.url, { messages, max_tokens: 64 });
  const shortMs = Date.now() - t0;
  assert.equal(short.status, 200);
  // A 4096-token stream (64 times the answer above), cut by its client after its second chunk.
  const started = Date.now();
  const body = JSON.stringify({ messages, max_tokens: 4096, stream: true });
  const sock = connect(tiny.port, '127.0.0.1', () => {
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    let events = 0;
    sock.on('data', (d: Buffer) => {
      events += (d.toString().match(/^data: /gm) ?? []).length;
      if (events >= 2) resolve();
    });
    sock.on('error', reject);
  });
  // While it holds the model, one request may wait (--max-queue 1); the next is refused.
  const waiting = postJson(tiny.url, { messages, max_tokens: 8 });
  await new Promise((r) => setTimeout(r, 200));
  const refused = await postJson(tiny.url, { messages, max_tokens: 8 });
  assert.equal(refused.status, 429, refused.text);
  assert.equal(refused.headers['retry-after'], '2');
  assert.equal(refused.json().error.code, 'queue_full');
  assert.equal(refused.json().error.type, 'rate_limit_error');
  sock.destroy();
  // The waiting request is served as soon as the cancelled run stops, long before 4096 tokens could be done.
  const next = await waiting;
  assert.equal(next.status, 200, next.text);
  const elapsed = Date.now() - started;
  assert.ok(elapsed < shortMs * 16, `cancelled run stopped promptly (${elapsed} ms; 64 tokens took ${shortMs} ms)`);
  const h = (await raw(tiny.url, { path: '/health' })).json() as unknown as { queue: { cancelled: number } };
  assert.ok(h.queue.cancelled >= 1, 'the disconnected run counts as cancelled');
  await waitFor(() => /disconnected/.test(tiny.log()));
});

/** Polls until `cond` holds (a server's log line is written as its response closes, just after the client has it). */
async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A PNG whose header declares `w`×`h` (pixel data for almost nothing): a decompression bomb by its claim. */
function pngWithSize(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.from([0, 1, 2, 3]))), pngChunk('IEND', Buffer.alloc(0))]);
}

test('≥ 30 malformed requests are each answered with their error; the server stays up', async () => {
  const ok = { messages: [userTurn(QUESTION)] };
  const withImage = (url: string) => ({ messages: [userTurn(QUESTION, url)] });
  const b64 = png.toString('base64');
  const cases: [name: string, body: unknown, status: number, param?: string | null, headers?: Record<string, string>][] = [
    ['broken JSON', '{"messages": [', 400],
    ['empty body', '', 400],
    ['JSON array', '[]', 400, 'body'],
    ['JSON string', '"hello"', 400, 'body'],
    ['no messages', {}, 400, 'messages'],
    ['messages not an array', { messages: 'hi' }, 400, 'messages'],
    ['empty messages', { messages: [] }, 400, 'messages'],
    ['message not an object', { messages: [42] }, 400, 'messages[0]'],
    ['unknown role', { messages: [{ role: 'robot', content: 'hi' }] }, 400, 'messages[0].role'],
    ['content a number', { messages: [{ role: 'user', content: 7 }] }, 400, 'messages[0].content'],
    ['part without type', { messages: [{ role: 'user', content: [{ text: 'hi' }] }] }, 400, 'messages[0].content[0].type'],
    ['text part not a string', { messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] }, 400, 'messages[0].content[0].text'],
    ['image_url without url', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }, { type: 'text', text: 'q' }] }] }, 400, 'messages[0].content[0].image_url.url'],
    ['image in an assistant turn', { messages: [{ role: 'assistant', content: [{ type: 'image_url', image_url: { url: dataUrl } }] }, { role: 'user', content: 'q' }] }, 400, 'messages[0].content[0]'],
    ['last message not the user\'s', { messages: [userTurn(QUESTION), { role: 'assistant', content: 'x' }] }, 400, 'messages[1]'],
    ['no question text', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl } }] }] }, 400, 'messages[0].content'],
    ['model a number', { ...ok, model: 3 }, 400, 'model'],
    ['max_tokens a string', { ...ok, max_tokens: '12' }, 400, 'max_tokens'],
    ['max_tokens zero', { ...ok, max_tokens: 0 }, 400, 'max_tokens'],
    ['max_completion_tokens too large', { ...ok, max_completion_tokens: 1e9 }, 400, 'max_completion_tokens'],
    ['temperature negative', { ...ok, temperature: -1 }, 400, 'temperature'],
    ['top_p zero', { ...ok, top_p: 0 }, 400, 'top_p'],
    ['seed fractional', { ...ok, seed: 1.5 }, 400, 'seed'],
    ['stream a string', { ...ok, stream: 'yes' }, 400, 'stream'],
    ['n = 2', { ...ok, n: 2 }, 400, 'n'],
    ['unknown field', { ...ok, tempreature: 0.5 }, 400, 'tempreature'],
    ['unknown DiffusionVL setting', { ...ok, diffusionvl: { stepz: 4 } }, 400, 'diffusionvl.stepz'],
    ['bad remasking', { ...ok, diffusionvl: { remasking: 'random' } }, 400, 'diffusionvl.remasking'],
    ['steps out of range', { ...ok, diffusionvl: { steps: 1000 } }, 400, 'diffusionvl.steps'],
    ['data: URL not base64', withImage(`data:image/png,${b64}`), 400, 'messages'],
    ['data: URL of text', withImage('data:text/plain;base64,aGVsbG8='), 400, 'messages'],
    ['malformed data: URL', withImage('data:image/png;base64'), 400, 'messages'],
    ['base64 with bad characters', withImage('data:image/png;base64,!!!!'), 400, 'messages'],
    ['truncated base64', withImage(`data:image/png;base64,${b64.slice(0, 401)}`), 400, 'messages'],
    ['truncated image', withImage(`data:image/png;base64,${b64.slice(0, 200)}`), 422, 'messages'],
    ['empty image', withImage('data:image/png;base64,'), 422, 'messages'],
    ['not an image', withImage(`data:image/png;base64,${Buffer.from('hello, not an image').toString('base64')}`), 422, 'messages'],
    ['image bomb', withImage(`data:image/png;base64,${pngWithSize(60000, 60000).toString('base64')}`), 422, 'messages'],
    ['file: URL', withImage('file:///etc/passwd'), 400, 'messages'],
    ['a bare path', withImage('/etc/passwd'), 400, 'messages'],
    ['remote URL without --allow-image-urls', withImage('http://example.com/a.png'), 400, 'messages'],
    ['too many images', { messages: [{ role: 'user', content: [...Array(9)].map(() => ({ type: 'image_url', image_url: { url: dataUrl } })).concat([{ type: 'text', text: 'q' } as never]) }] }, 400, 'messages'],
    ['wrong content type', JSON.stringify(ok), 415, null, { 'content-type': 'text/plain' }],
  ];
  assert.ok(cases.length >= 30);
  for (const [name, body, status, param, headers] of cases) {
    const r = await postJson(demo.url, body, headers);
    assert.equal(r.status, status, `${name}: ${r.text}`);
    const e = r.json().error;
    assert.equal(typeof e.message, 'string', name);
    assert.ok(e.type.length > 0 && e.code !== null, name);
    if (param !== undefined) assert.equal(e.param, param, `${name}: param`);
  }
  // Routing and methods.
  assert.equal((await raw(demo.url, { path: '/v1/completions', method: 'POST' })).status, 404);
  assert.equal((await raw(demo.url, { path: '/v1/chat/completions' })).status, 405);
  // A body over the limit, declared up front: refused before it is read.
  const huge = await raw(demo.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'content-length': String(MAX_BODY_BYTES + 1) } }).catch((e: Error) => e);
  assert.ok(!(huge instanceof Error) && huge.status === 413, String(huge instanceof Error ? huge.message : huge.text));
  // A body over the limit, streamed without a declared length (chunked).
  const chunked = await new Promise<number>((resolve, reject) => {
    const sock = connect(demo.port, '127.0.0.1', () => {
      sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      const piece = Buffer.alloc(1024 * 1024, 'a');
      const pump = (): void => {
        if (sock.destroyed) return;
        sock.write(`${piece.length.toString(16)}\r\n`);
        sock.write(piece);
        if (sock.write('\r\n')) setImmediate(pump);
        else sock.once('drain', pump);
      };
      pump();
    });
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString();
      const m = /^HTTP\/1\.1 (\d+)/.exec(got);
      if (m) {
        sock.destroy();
        resolve(Number(m[1]));
      }
    });
    sock.on('error', (e) => (got ? undefined : reject(e)));
  });
  assert.equal(chunked, 413);
  // The server is alive and answers.
  const after = await postJson(demo.url, ok);
  assert.equal(after.status, 200);
  assert.equal(after.json().choices instanceof Array, true);
});

test('slow clients cannot hold the server: a trickled body gets 408, stalled headers are cut off', async () => {
  // --request-timeout 1 on this server.
  const slowBody = await new Promise<{ status: number; ms: number }>((resolve, reject) => {
    const t0 = Date.now();
    const sock = connect(tiny.port, '127.0.0.1', () => {
      sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"messages"');
    });
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString()));
    sock.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0), ms: Date.now() - t0 }));
    sock.on('error', reject);
  });
  assert.equal(slowBody.status, 408);
  assert.ok(slowBody.ms < 5000, `${slowBody.ms} ms`);
  const slowHeaders = await new Promise<number>((resolve, reject) => {
    const t0 = Date.now();
    const sock = connect(tiny.port, '127.0.0.1', () => sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '));
    sock.on('data', () => {});
    sock.on('close', () => resolve(Date.now() - t0));
    sock.on('error', reject);
  });
  assert.ok(slowHeaders < 5000, `stalled headers cut off after ${slowHeaders} ms`);
  assert.equal((await raw(tiny.url, { path: '/health' })).status, 200);
});

test('remote image URLs, when allowed, are never fetched from loopback or private addresses', async () => {
  let hits = 0;
  const local: Server = createServer((_req, res) => {
    hits++;
    res.end(png);
  });
  await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
  const port = (local.address() as { port: number }).port;
  const s = await startServe(['--allow-image-urls']);
  try {
    for (const url of [`http://127.0.0.1:${port}/a.png`, `http://localhost:${port}/a.png`, `http://[::1]:${port}/a.png`, 'http://10.0.0.1/a.png', 'http://169.254.169.254/latest/meta-data', `http://[::ffff:127.0.0.1]:${port}/a.png`, `ftp://127.0.0.1:${port}/a.png`]) {
      const r = await postJson(s.url, { messages: [userTurn(QUESTION, url)] });
      assert.equal(r.status, 400, `${url}: ${r.text}`);
      assert.equal(r.json().error.code === 'image_url_refused' || r.json().error.code === 'invalid_value', true, url);
    }
    assert.equal(hits, 0, 'nothing on loopback was fetched');
  } finally {
    await s.close();
    local.close();
  }
});
