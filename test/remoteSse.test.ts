import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sseData } from '../server/remote/sse';

async function events(chunks: string[]): Promise<string[]> {
  const enc = new TextEncoder();
  async function* body(): AsyncGenerator<Uint8Array> {
    for (const c of chunks) yield enc.encode(c);
  }
  const out: string[] = [];
  for await (const d of sseData(body())) out.push(d);
  return out;
}

test('SSE events come out whole however the bytes are cut, with LF, CRLF or CR line ends', async () => {
  const stream = 'data: {"a":1}\n\n: a comment\nevent: x\ndata: {"b":2}\n\ndata: [DONE]\n\n';
  const expected = ['{"a":1}', '{"b":2}', '[DONE]'];
  assert.deepEqual(await events([stream]), expected);
  assert.deepEqual(await events([...stream]), expected, 'one character at a time');
  const crlf = stream.replace(/\n/g, '\r\n');
  assert.deepEqual(await events([...crlf]), expected, 'CRLF cut between CR and LF');
  assert.deepEqual(await events([stream.replace(/\n/g, '\r')]), expected, 'CR only');
  // Multi-line data joins with \n; a last event without its blank line still counts; multi-byte UTF-8 cut in two.
  const bytes = Buffer.from('data: é\ndata: ü\n\ndata: end', 'utf8');
  async function* split(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
  }
  const out: string[] = [];
  for await (const d of sseData(split())) out.push(d);
  assert.deepEqual(out, ['é\nü', 'end']);
});
