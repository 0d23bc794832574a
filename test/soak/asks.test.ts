// Soaks (npm run test:soak, also run by .ci/run): 100 asks cancelled in a row and 200 asks over LSP and over MCP,
// many in flight at once over a mix of images and questions. No answer lost or given to the wrong request (each
// equals the answer its image and question got alone), the queue empties and memory returns near its level.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCodes, Methods, type AskResult, type PartialAnswerParams, type StatusResult } from '../../server/protocol';
import { CancellationTokenSource, startLspServer, type LspClient } from '../helpers/lspClient';
import { repoRoot } from '../helpers/paths';
import { ensureTinyModel } from '../helpers/tinyModel';

const IMAGES = ['chart-1.png', 'chart-2.png', 'shapes-1.png', 'arrow-1.png'];
const QUESTIONS = ['Which bar is the tallest?', 'What colour is the largest shape?', 'How many shapes are there?'];
const PAIRS = IMAGES.flatMap((image) => QUESTIONS.map((question) => ({ image, question })));
const MAX_TOKENS = 8;
/** Growth of resident memory tolerated over a soak (allocator and JIT noise, not a leak of per-request state). */
const RSS_SLACK = 96 * 2 ** 20;

let work: string;
let model: string;
let lsp: LspClient | undefined;

before(async () => {
  model = await ensureTinyModel('fp32');
  work = await mkdtemp(join(tmpdir(), 'dvl-soak-'));
  for (const f of IMAGES) await copyFile(join(repoRoot, 'media', 'examples', f), join(work, f));
});

after(async () => {
  await lsp?.close();
  await rm(work, { recursive: true, force: true });
});

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function sidecar(): Promise<LspClient> {
  lsp ??= await startLspServer({ workspaceFolders: [work], args: ['--model', model], settings: { executionProvider: 'cpu' } });
  return lsp;
}

const lspAsk = (s: LspClient, p: { image: string; question: string }, extra: Record<string, unknown> = {}, cts?: CancellationTokenSource) =>
  s.request<AskResult>(Methods.ask, { image: { path: join(work, p.image) }, question: p.question, options: { maxNewTokens: MAX_TOKENS }, ...extra }, cts);

/** Runs `n` jobs with at most `width` in flight; returns their results in order. */
async function inFlight<T>(n: number, width: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  }));
  return out;
}

test('LSP: 100 asks cancelled in a row (half queued, half running), then the same answers and no growth', { timeout: 1_800_000 }, async () => {
  const s = await sidecar();
  const reference = await lspAsk(s, PAIRS[0]);
  for (let i = 0; i < 3; i++) await lspAsk(s, PAIRS[0]);
  const rss0 = (await s.request<StatusResult>(Methods.status, null)).memory.rssBytes;
  const started = new Set<string>();
  const sub = s.conn.onNotification(Methods.partialAnswer, (p: PartialAnswerParams) => void started.add(String(p.token)));
  for (let i = 0; i < 100; i++) {
    const cts = new CancellationTokenSource();
    const token = `c${i}`;
    const p = lspAsk(s, PAIRS[i % PAIRS.length], { streamToken: token, streamSteps: true, options: { maxNewTokens: 32 } }, cts);
    if (i % 2 === 1) {
      const outcome = p.then(() => 'answered', () => 'failed');
      for (const end = Date.now() + 60_000; !started.has(token) && Date.now() < end; ) {
        if ((await Promise.race([outcome, new Promise((r) => setTimeout(() => r('wait'), 5))])) !== 'wait') break;
      }
    }
    cts.cancel();
    await assert.rejects(p, (e: { code: number }) => e.code === ErrorCodes.RequestCancelled);
  }
  sub.dispose();
  const st = await s.request<StatusResult>(Methods.status, null);
  assert.deepEqual([st.queue.running, st.queue.waitingInteractive, st.queue.waitingHover], [0, 0, 0]);
  assert.equal((await lspAsk(s, PAIRS[0])).text, reference.text);
  const rss1 = (await s.request<StatusResult>(Methods.status, null)).memory.rssBytes;
  console.log(`# 100 cancelled asks: RSS ${mib(rss0)} → ${mib(rss1)}`);
  assert.ok(rss1 - rss0 < RSS_SLACK, `RSS grew by ${mib(rss1 - rss0)}`);
});

test('LSP: 200 asks, 16 in flight, each answered with its own answer; queue empty and memory back near its level', { timeout: 1_800_000 }, async () => {
  const s = await sidecar();
  const expected = new Map<number, string>();
  for (const [i, p] of PAIRS.entries()) expected.set(i, (await lspAsk(s, p)).text);
  const st0 = await s.request<StatusResult>(Methods.status, null);
  const answers = await inFlight(200, 16, (i) => lspAsk(s, PAIRS[(i * 7) % PAIRS.length]));
  answers.forEach((a, i) => assert.equal(a.text, expected.get((i * 7) % PAIRS.length), `ask ${i} got another request's answer`));
  const st1 = await s.request<StatusResult>(Methods.status, null);
  assert.deepEqual([st1.queue.running, st1.queue.waitingInteractive, st1.queue.waitingHover], [0, 0, 0]);
  assert.equal(st1.queue.completed - st0.queue.completed, 200);
  console.log(`# 200 LSP asks: RSS ${mib(st0.memory.rssBytes)} → ${mib(st1.memory.rssBytes)}`);
  assert.ok(st1.memory.rssBytes - st0.memory.rssBytes < RSS_SLACK, `RSS grew by ${mib(st1.memory.rssBytes - st0.memory.rssBytes)}`);
});

/** Resident memory of a process (Linux /proc), or undefined elsewhere. */
function rssOf(pid: number | null): number | undefined {
  if (pid === null || process.platform !== 'linux') return undefined;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : undefined;
}

test('MCP: 200 ask_image calls, 8 in flight, each answered with its own answer; memory back near its level', { timeout: 1_800_000 }, async () => {
  const transport = new StdioClientTransport({ command: process.execPath, args: [join(repoRoot, 'bin', 'diffusionvl.js'), 'mcp', '--model', model, '--provider', 'cpu', '--root', work], stderr: 'pipe', cwd: repoRoot });
  const client = new Client({ name: 'diffusionvl-soak', version: '1.0.0' });
  await client.connect(transport);
  try {
    const call = async (p: { image: string; question: string }) => {
      const r = (await client.callTool({ name: 'ask_image', arguments: { path: join(work, p.image), question: p.question, max_tokens: MAX_TOKENS } }, CallToolResultSchema, { timeout: 600_000 })) as CallToolResult;
      assert.ok(!r.isError, JSON.stringify(r.content));
      return (r.content[0] as { type: 'text'; text: string }).text;
    };
    const expected = new Map<number, string>();
    for (const [i, p] of PAIRS.entries()) expected.set(i, await call(p));
    const rss0 = rssOf(transport.pid);
    const answers = await inFlight(200, 8, (i) => call(PAIRS[(i * 5) % PAIRS.length]));
    answers.forEach((a, i) => assert.equal(a, expected.get((i * 5) % PAIRS.length), `call ${i} got another call's answer`));
    const rss1 = rssOf(transport.pid);
    if (rss0 !== undefined && rss1 !== undefined) {
      console.log(`# 200 MCP calls: RSS ${mib(rss0)} → ${mib(rss1)}`);
      assert.ok(rss1 - rss0 < RSS_SLACK, `RSS grew by ${mib(rss1 - rss0)}`);
    }
  } finally {
    await client.close();
  }
});
