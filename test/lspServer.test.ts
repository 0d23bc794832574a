import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ProgressType } from 'vscode-jsonrpc/node';
import { MASK_TEXT } from '../server/engine/api';
import { createEngine } from '../server/engine/engine';
import { formatComment, wrapText } from '../server/protocol/commentSyntax';
import { oneLine } from '../server/lsp/describe';
import { DefaultPrompts, ErrorCodes, Methods, type AskPartial, type AskResult, type PartialAnswerParams, type StatusResult } from '../server/protocol';
import { startLspServer, type LspClient } from './helpers/lspClient';
import { fixturesDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

const QUESTION = 'What does this diagram show?';
const OPTIONS = { maxNewTokens: 16 };
let ws: string;
let outside: string;
let model: string;
let client: LspClient;
let reference: string;
let description: string;

before(async () => {
  model = await ensureTinyModel('fp32');
  ws = await mkdtemp(join(tmpdir(), 'dvl-ws-'));
  outside = await mkdtemp(join(tmpdir(), 'dvl-outside-'));
  await mkdir(join(ws, 'docs', 'img'), { recursive: true });
  await copyFile(join(fixturesDir, 'lsp', 'diagram.png'), join(ws, 'docs', 'img', 'diagram.png'));
  await copyFile(join(fixturesDir, 'lsp', 'diagram.png'), join(outside, 'secret.png'));
  const engine = await createEngine({ modelDir: model, provider: 'cpu' });
  try {
    reference = (await engine.ask({ images: [{ path: join(ws, 'docs', 'img', 'diagram.png') }], question: QUESTION, options: OPTIONS })).text;
    // What the code actions describe the image as (the hover prompt and token budget configured below).
    description = oneLine((await engine.ask({ images: [{ path: join(ws, 'docs', 'img', 'diagram.png') }], question: DefaultPrompts.describe, options: { maxNewTokens: 8 } })).text);
  } finally {
    await engine.dispose();
  }
  client = await startLspServer({
    workspaceFolders: [ws],
    args: ['--model', model],
    settings: { executionProvider: 'cpu', hover: { maxNewTokens: 8 }, altText: { maxNewTokens: 8 } },
  });
});

after(async () => {
  await client?.close();
  await Promise.all([ws, outside].map((d) => d && rm(d, { recursive: true, force: true })));
});

test('ask returns the engine’s own answer, streaming partials before the response', async () => {
  const partials: PartialAnswerParams[] = [];
  const progress: AskPartial[] = [];
  const sub = client.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => {
    partials.push(p);
  });
  const prog = client.conn.onProgress(new ProgressType<AskPartial>(), 'pr-1', (v) => {
    progress.push(v);
  });
  const res = await client.request<AskResult>(Methods.ask, {
    image: { path: join(ws, 'docs', 'img', 'diagram.png') },
    question: QUESTION,
    options: OPTIONS,
    streamToken: 'ask-1',
    partialResultToken: 'pr-1',
    streamSteps: true,
  });
  sub.dispose();
  prog.dispose();
  assert.equal(res.text, reference);
  assert.ok(partials.length >= 2, 'block partials streamed');
  assert.ok(partials.every((p) => p.token === 'ask-1'));
  const steps = partials.filter((p) => p.kind === 'step');
  assert.equal(steps.length, res.stats!.forwards.denoise + res.stats!.drafts.accepted, 'one step state per real step (a pass of its own or an accepted draft), on request');
  assert.ok(steps[0].blockText?.includes(MASK_TEXT), `the first step still shows masked positions: ${steps[0].blockText}`);
  assert.equal(partials.filter((p) => p.kind === 'block').at(-1)?.text, reference);
  assert.ok(progress.length >= 2, '$/progress partial results');
  assert.equal(res.stats!.generatedTokens, OPTIONS.maxNewTokens);
  assert.ok(res.stats!.forwards.total > 0 && res.stats!.tokensPerForward > 0);
  assert.ok(res.stats!.timings.totalMs > 0);
});

test('ask with bytes gives the same answer; vision/prefix cache is hit on a repeat', async () => {
  const { readFile } = await import('node:fs/promises');
  const bytes = (await readFile(join(ws, 'docs', 'img', 'diagram.png'))).toString('base64');
  const res = await client.request<AskResult>(Methods.ask, { image: { bytes }, question: QUESTION, options: OPTIONS });
  assert.equal(res.text, reference);
  assert.equal(res.stats!.cache.visionHit, true);
});

test('status reports the loaded model, provider and queue', async () => {
  const s = await client.request<StatusResult>(Methods.status, null);
  assert.equal(s.model.state, 'ready');
  assert.equal(s.model.dir, model);
  assert.equal(s.provider.inUse, 'cpu');
  assert.ok(s.memory.rssBytes > 0);
  assert.equal(s.queue.running, 0);
  assert.ok(client.notifications.some((n) => n.method === Methods.statusChanged), 'status notifications sent');
});

test('ask on a path outside the workspace is refused', async () => {
  await assert.rejects(client.request(Methods.ask, { image: { path: join(outside, 'secret.png') }, question: 'q' }), (e: { code: number }) => {
    assert.equal(e.code, ErrorCodes.PathOutsideWorkspace);
    return true;
  });
});

test('hover on a Markdown image explains it; a path outside the workspace gets nothing', async () => {
  const rel = join('..', '..', outside.split('/').pop()!, 'secret.png');
  const text = `# Doc\n\n![](img/diagram.png)\n\n![x](${rel})\n`;
  const uri = await client.openDocument(join(ws, 'docs', 'readme.md'), 'markdown', text);
  const hover = await client.request<{ contents: { value: string }; range: unknown } | null>('textDocument/hover', {
    textDocument: { uri },
    position: { line: 2, character: 6 },
  });
  assert.ok(hover, 'hover returned');
  assert.match(hover.contents.value, /DiffusionVL/);
  assert.ok(hover.contents.value.length > 'DiffusionVL'.length + 6);
  const none = await client.request('textDocument/hover', { textDocument: { uri }, position: { line: 4, character: 6 } });
  assert.equal(none, null);
  const prose = await client.request('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 2 } });
  assert.equal(prose, null);
});

test('a newer hover supersedes an older one instead of queueing behind it', async () => {
  // Distinct prompt-free images so neither is cached.
  await writeFile(join(ws, 'docs', 'img', 'b.png'), await (await import('node:fs/promises')).readFile(join(fixturesDir, 'golden', 'images', 'img3_tiny_37x29.png')));
  await writeFile(join(ws, 'docs', 'img', 'c.png'), await (await import('node:fs/promises')).readFile(join(fixturesDir, 'golden', 'images', 'img5_gray_64x48.png')));
  const uri = await client.openDocument(join(ws, 'docs', 'two.md'), 'markdown', '![](img/b.png)\n![](img/c.png)\n');
  const first = client.request<unknown>('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 5 } });
  await new Promise((r) => setTimeout(r, 50));
  const second = client.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 1, character: 5 } });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a, null, 'older hover dropped');
  assert.ok(b && /DiffusionVL/.test(b.contents.value));
});

interface Action {
  title: string;
  kind: string;
  data: unknown;
  edit?: { documentChanges: { textDocument: { uri: string }; edits: { range: unknown; newText: string }[] }[] };
}

test('alt-text action appears for an image without alt text and resolves to an edit filling it', async () => {
  const text = '![](img/diagram.png)\n![has alt](img/diagram.png)\n<img src="img/diagram.png">\n';
  const uri = await client.openDocument(join(ws, 'docs', 'alt.md'), 'markdown', text);
  const actions = await client.request<Action[]>('textDocument/codeAction', {
    textDocument: { uri },
    range: { start: { line: 0, character: 0 }, end: { line: 2, character: 27 } },
    context: { diagnostics: [] },
  });
  const alt = actions.filter((a) => a.title === 'Generate alt text');
  assert.equal(alt.length, 2, 'markdown without alt and html without alt');
  assert.equal(alt[0].edit, undefined, 'no model work before resolve');
  const resolved = await client.request<Action>('codeAction/resolve', alt[0]);
  const edit = resolved.edit!.documentChanges[0].edits[0];
  assert.deepEqual(edit.range, { start: { line: 0, character: 2 }, end: { line: 0, character: 2 } });
  assert.ok(edit.newText.length > 0 && edit.newText.length <= 130, edit.newText);
  const html = await client.request<Action>('codeAction/resolve', alt[1]);
  assert.match(html.edit!.documentChanges[0].edits[0].newText, /^ alt=".+"$/);
});

test('code files get "Insert description as comment" for image paths', async () => {
  const text = "import x from 'y';\n    const logo = loadImage('./docs/img/diagram.png');\n";
  const uri = await client.openDocument(join(ws, 'app.ts'), 'typescript', text);
  const actions = await client.request<Action[]>('textDocument/codeAction', {
    textDocument: { uri },
    range: { start: { line: 1, character: 30 }, end: { line: 1, character: 30 } },
    context: { diagnostics: [] },
  });
  assert.deepEqual(actions.map((a) => a.title), ['Insert description as comment']);
  const resolved = await client.request<Action>('codeAction/resolve', actions[0]);
  const edit = resolved.edit!.documentChanges[0].edits[0];
  assert.match(edit.newText, /^ {4}\/\/ Image \.\/docs\/img\/diagram\.png: .+\n$/);
});

test('"Insert description as comment" writes the comment the extension\'s "Describe Image and Insert" writes', async () => {
  // Both features format through the one shared table (server/protocol/commentSyntax.ts); languages where the two
  // used to disagree are included (graphql, terraform: `#`).
  assert.ok(description.length > 0);
  for (const [language, file] of [
    ['python', 'a.py'],
    ['graphql', 'a.graphql'],
    ['terraform', 'a.tf'],
    ['lua', 'a.lua'],
    ['css', 'a.css'],
  ] as const) {
    const text = `x = 1\n  logo = "./docs/img/diagram.png"\n`;
    const uri = await client.openDocument(join(ws, file), language, text);
    const actions = await client.request<Action[]>('textDocument/codeAction', {
      textDocument: { uri },
      range: { start: { line: 1, character: 12 }, end: { line: 1, character: 12 } },
      context: { diagnostics: [] },
    });
    const describe = actions.find((a) => a.title === 'Insert description as comment');
    assert.ok(describe, `${language}: ${JSON.stringify(actions.map((a) => a.title))}`);
    const resolved = await client.request<Action>('codeAction/resolve', describe);
    const edit = resolved.edit!.documentChanges[0].edits[0];
    const expected = formatComment(language, wrapText(`Image ./docs/img/diagram.png: ${description}`), '  ');
    assert.ok(expected, `${language} is in the shared table`);
    assert.equal(edit.newText, `  ${expected}\n`, language);
  }
});
