import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, ListRootsRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { AskResult, AskStats } from '../server/protocol';
import { repoRoot } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

// `diffusionvl mcp` as an agent runs it: the built CLI spawned over stdio, driven by the SDK's own client.
const cli = join(repoRoot, 'bin', 'diffusionvl.js');
const example = join(repoRoot, 'media', 'examples', 'chart-1.png');
const QUESTION = 'Which bar is the tallest?';

interface Server {
  client: Client;
  stderr: () => string;
  close(): Promise<void>;
}

/** Starts `diffusionvl mcp` with `args`; the client declares `roots` (file URIs) when given. */
async function startServer(args: string[], roots?: string[]): Promise<Server> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [cli, 'mcp', ...args], stderr: 'pipe', cwd: repoRoot });
  let log = '';
  transport.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const client = new Client({ name: 'diffusionvl-test', version: '1.0.0' }, { capabilities: roots ? { roots: { listChanged: true } } : {} });
  if (roots) client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: roots.map((r) => ({ uri: pathToFileURL(r).href, name: r })) }));
  await client.connect(transport);
  return { client, stderr: () => log, close: () => client.close() };
}

async function call(s: Server, name: string, args: Record<string, unknown>, extra: { signal?: AbortSignal; onprogress?: (p: { progress: number; message?: string }) => void } = {}): Promise<CallToolResult> {
  return (await s.client.callTool({ name, arguments: args }, CallToolResultSchema, { ...extra, timeout: 600_000 })) as CallToolResult;
}

const textOf = (r: CallToolResult): string => (r.content[0] as { type: 'text'; text: string }).text;
const stats = (r: CallToolResult): AskStats => (r.structuredContent as unknown as AskResult).stats!;

let work: string;
let root: string;
let outside: string;
let server: Server;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'dvl-mcp-'));
  root = join(work, 'root');
  outside = join(work, 'outside');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  copyFileSync(example, join(root, 'chart.png'));
  copyFileSync(example, join(outside, 'chart.png'));
  // A PNG signature followed by garbage.
  writeFileSync(join(root, 'corrupt.png'), Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 7)]));
  // A FIFO outside the roots, reachable through a symlink inside them: opening it would block forever, so a prompt
  // error proves it was never opened.
  execFileSync('mkfifo', [join(outside, 'trap.png')]);
  symlinkSync(join(outside, 'trap.png'), join(root, 'sub', 'link.png'));
  symlinkSync(outside, join(root, 'outlink'));
  server = await startServer([], [root]);
});

after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

test('names itself with the package version and lists ask_image and describe_image with their input schemas', async () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.deepEqual(server.client.getServerVersion(), { name: 'diffusionvl', version: pkg.version });
  const { tools } = await server.client.listTools();
  const byName = new Map(tools.map((t) => [t.name, t]));
  assert.deepEqual([...byName.keys()].sort(), ['ask_image', 'describe_image']);
  assert.deepEqual(Object.keys(byName.get('ask_image')!.inputSchema.properties ?? {}).sort(), ['data', 'max_tokens', 'path', 'question', 'strategy']);
  assert.deepEqual(byName.get('ask_image')!.inputSchema.required, ['question']);
  assert.ok(Object.keys(byName.get('describe_image')!.inputSchema.properties ?? {}).includes('style'));
});

test('ask_image on a shipped example answers what `diffusionvl ask` answers, with the sidecar\'s stats', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [cli, 'ask', example, QUESTION], { cwd: repoRoot });
  const expected = stdout.trim();
  assert.ok(expected.length > 0);
  const r = await call(server, 'ask_image', { path: join(root, 'chart.png'), question: QUESTION });
  assert.equal(r.isError, undefined, textOf(r));
  assert.equal(textOf(r), expected);
  const s = stats(r);
  assert.ok(s.generatedTokens > 0);
  assert.equal(s.forwards.total, s.forwards.prefill + s.forwards.denoise + s.forwards.commit);
  assert.ok(s.timings.totalMs > 0);

  // The same image as a data: URL, and as a path relative to the root.
  const dataUrl = `data:image/png;base64,${readFileSync(example).toString('base64')}`;
  assert.equal(textOf(await call(server, 'ask_image', { data: dataUrl, question: QUESTION })), expected);
  const relative = await call(server, 'ask_image', { path: 'chart.png', question: QUESTION });
  assert.equal(textOf(relative), expected);
  assert.equal(stats(relative).cache.visionHit, true, 'the same image again hits the vision cache');
});

test('paths outside the roots are refused without being read, symlinks and traversal included', async () => {
  for (const path of [join(outside, 'chart.png'), join(root, 'sub', 'link.png'), join(root, 'outlink', 'chart.png'), '../outside/chart.png', pathToFileURL(join(outside, 'chart.png')).href]) {
    const r = await call(server, 'ask_image', { path, question: QUESTION });
    assert.equal(r.isError, true, path);
    assert.match(textOf(r), /^PathOutsideRoots: .*outside the allowed roots/, path);
  }
  const r = await call(server, 'ask_image', { path: join(root, 'chart.png'), question: QUESTION });
  assert.equal(r.isError, undefined, 'the server keeps serving');
});

test('a corrupt image and bad arguments give tool errors; the server keeps serving', async () => {
  const corrupt = await call(server, 'describe_image', { path: join(root, 'corrupt.png') });
  assert.equal(corrupt.isError, true);
  assert.match(textOf(corrupt), /^InvalidImage: /);
  const both = await call(server, 'ask_image', { path: join(root, 'chart.png'), data: 'AAAA', question: QUESTION });
  assert.match(textOf(both), /^InvalidParams: give exactly one of `path` and `data`/);
  const tooLong = await call(server, 'ask_image', { path: join(root, 'chart.png'), question: QUESTION, max_tokens: 0 });
  assert.equal(tooLong.isError, true);
  assert.match(textOf(tooLong), /maxNewTokens/);
  const missing = await call(server, 'ask_image', { path: join(root, 'nope.png'), question: QUESTION });
  assert.match(textOf(missing), /^InvalidImage: .*no such file/);
  const ok = await call(server, 'describe_image', { path: join(root, 'chart.png'), style: 'alt' });
  assert.equal(ok.isError, undefined, textOf(ok));
  assert.ok(textOf(ok).length > 0 && !textOf(ok).includes('\n'));
});

test('10 concurrent calls are all answered', async () => {
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => call(server, i % 2 ? 'describe_image' : 'ask_image', { path: join(root, 'chart.png'), question: QUESTION })),
  );
  const asks = results.filter((_, i) => i % 2 === 0).map(textOf);
  const describes = results.filter((_, i) => i % 2 === 1).map(textOf);
  for (const r of results) assert.equal(r.isError, undefined, textOf(r));
  assert.equal(new Set(asks).size, 1);
  assert.equal(new Set(describes).size, 1);
  assert.ok(results.some((r) => stats(r).timings.queueMs > 0));
});

test('--root fixes the roots; a cancelled call stops its run and the server keeps serving', async () => {
  // The random-weight tiny model never emits end-of-text: a long answer runs until it is cancelled.
  const model = await ensureTinyModel('fp32');
  const s = await startServer(['--root', root, '--model', model], [outside]);
  try {
    const denied = await call(s, 'ask_image', { path: join(outside, 'chart.png'), question: 'What is this?' });
    assert.match(textOf(denied), /^PathOutsideRoots: /, 'the client cannot widen --root');

    await call(s, 'ask_image', { path: join(root, 'chart.png'), question: 'What is this?', max_tokens: 8 }); // loads the model
    const timed = Date.now();
    const progress: { progress: number; message?: string }[] = [];
    const short = await call(s, 'ask_image', { path: join(root, 'chart.png'), question: 'What is this?', max_tokens: 64 }, { onprogress: (p) => progress.push(p) });
    const shortMs = Date.now() - timed;
    assert.equal(stats(short).generatedTokens, 64);
    // One notification per decoded block (8 tokens each) carrying the answer so far. The SDK client handles a
    // response before a notification that arrived in the same read, so the last one or two may be dropped.
    assert.ok(progress.length >= 4, `progress per block (${progress.length} of 8)`);
    progress.forEach((p, i) => {
      assert.equal(p.progress, i + 1);
      // (a block may end inside a multi-byte character, shown as U+FFFD until the next block completes it)
      assert.ok(textOf(short).startsWith((p.message ?? '\0').replace(/\uFFFD+$/, '')));
    });

    const abort = new AbortController();
    let blocks = 0;
    const started = Date.now();
    const long = call(s, 'ask_image', { path: join(root, 'chart.png'), question: 'What is this?', max_tokens: 4096 }, {
      signal: abort.signal,
      onprogress: () => {
        if (++blocks === 2) abort.abort();
      },
    });
    await assert.rejects(long, /abort/i);
    // The next call runs once the cancelled run has stopped (runs are serialized); had it kept going, 4096 tokens
    // would take 64 times as long as the 64-token answer above.
    const next = await call(s, 'ask_image', { path: join(root, 'chart.png'), question: 'What is this?', max_tokens: 8 });
    assert.equal(next.isError, undefined, textOf(next));
    assert.equal(stats(next).generatedTokens, 8);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < shortMs * 16, `cancelled run stopped promptly (${elapsed} ms vs ${shortMs} ms for 64 tokens)`);
  } finally {
    await s.close();
  }
});

test('with no roots from the client and no --root, paths are refused and image bytes still work', async () => {
  const s = await startServer([]);
  try {
    const r = await call(s, 'ask_image', { path: join(root, 'chart.png'), question: QUESTION });
    assert.match(textOf(r), /^PathOutsideRoots: .*no folders are open to this server/);
    const b = await call(s, 'ask_image', { data: readFileSync(example).toString('base64'), question: QUESTION });
    assert.equal(b.isError, undefined, textOf(b));
  } finally {
    await s.close();
  }
});
