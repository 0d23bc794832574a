import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CancelledError, type Engine, type GenerationEvent } from '../server/engine/api';
import { createEngine } from '../server/engine/engine';
import { errorKind } from '../server/engine/errors';
import { caseImagePath, caseOptions, goldenCases } from './helpers/goldenCases';
import { repoRoot } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

let modelDir: string;
let engine: Engine;
const cases = goldenCases();
const a = cases.a_text_static_s8;

before(async () => {
  modelDir = await ensureTinyModel('fp32');
  engine = await createEngine({ modelDir, provider: 'cpu', threads: 1 });
});

after(async () => {
  await engine?.dispose();
});

test('cancelling mid-generation rejects promptly with CancelledError; the engine then gives the uncancelled answer', async () => {
  const ac = new AbortController();
  const events: GenerationEvent[] = [];
  let abortedAt = 0;
  const long = engine.generateIds(
    { promptIds: a.prompt_ids, images: [], options: { maxNewTokens: 2048, steps: 8 } },
    {
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.kind === 'block' && e.block === 1) {
          abortedAt = performance.now();
          ac.abort();
        }
      },
    },
  );
  await assert.rejects(long, (err) => err instanceof CancelledError);
  assert.ok(performance.now() - abortedAt < 500, 'rejected promptly');
  const seen = events.length;
  const r = await engine.generateIds({ promptIds: a.prompt_ids, images: [], options: caseOptions(a) });
  assert.deepEqual(r.outputIds, a.output_ids);
  assert.equal(events.length, seen, 'no events from the cancelled run after it was rejected');
  // An already-aborted signal never starts a run.
  await assert.rejects(engine.generateIds({ promptIds: a.prompt_ids, images: [] }, { signal: AbortSignal.abort() }), CancelledError);
});

test('a second question about the same image reuses its features and the shared prompt prefix', async () => {
  const image = { path: caseImagePath(cases.c_image1_static_s4)[0] };
  const options = { maxNewTokens: 16, steps: 4 };
  const first = await engine.ask({ images: [image], question: 'What is shown?', options });
  const second = await engine.ask({ images: [image], question: 'What colour is it?', options });
  assert.equal(second.stats.cache.visionHit, true);
  assert.equal(second.stats.cache.prefixHit, true);
  // System prompt + "user\n" + the 204 image tokens and more: most of the prompt is reused.
  assert.ok((second.stats.cache.prefixReusedTokens ?? 0) >= 200, `reused ${second.stats.cache.prefixReusedTokens}`);
  // Reuse changes no token: the same question again (full reuse) gives the same answer as the first time.
  const again = await engine.ask({ images: [image], question: 'What is shown?', options });
  assert.deepEqual(again.outputIds, first.outputIds);
  const fresh = await engine.ask({ images: [image], question: 'What colour is it?', options: { ...options, prefixCache: false } });
  assert.deepEqual(second.outputIds, fresh.outputIds);
  assert.equal(first.outputIds.length, options.maxNewTokens);
  assert.equal(again.text, first.text);
});

test('block and step events stream while generating', async () => {
  const events: GenerationEvent[] = [];
  await engine.generateIds({ promptIds: a.prompt_ids, images: [], options: caseOptions(a) }, { steps: true, onEvent: (e) => events.push(e) });
  const blocks = events.filter((e) => e.kind === 'block');
  const steps = events.filter((e) => e.kind === 'step');
  assert.equal(blocks.length, 5);
  // One event per real step, whatever K auto chose: each step is a pass's own state or an accepted draft.
  assert.equal(steps.length, a.forwards.denoise);
  const last = blocks[blocks.length - 1];
  assert.deepEqual(last.kind === 'block' && last.ids, a.output_ids);
});

test('asking for CUDA runs on CUDA where it starts, else falls back to CPU and says why', async () => {
  const e = await createEngine({ modelDir, provider: 'cuda', threads: 1 });
  try {
    const r = await e.generateIds({ promptIds: a.prompt_ids, images: [], options: caseOptions(a) });
    assert.equal(r.outputIds.length, a.output_ids.length);
    if (e.info.provider === 'cpu') {
      assert.match(e.info.providerReason, /^cuda unavailable: .+; fell back to cpu$/);
      assert.deepEqual(r.outputIds, a.output_ids);
    } else {
      assert.equal(e.info.provider, 'cuda');
      assert.equal(e.info.providerReason, 'cuda requested');
    }
  } finally {
    await e.dispose();
  }
});

test('bad input is an error of the right kind with a clear message', async () => {
  await assert.rejects(engine.generateIds({ promptIds: [...a.prompt_ids, -200], images: [] }), (e: Error) => errorKind(e) === 'prompt' && /1 image placeholder\(s\) but 0 image\(s\)/.test(e.message));
  await assert.rejects(engine.generateIds({ promptIds: a.prompt_ids, images: [], options: { steps: 0 } }), (e: Error) => errorKind(e) === 'options' && /^steps must be an integer in \[1, /.test(e.message));
  await assert.rejects(engine.generateIds({ promptIds: a.prompt_ids, images: [], options: { topP: 0 } }), (e: Error) => errorKind(e) === 'options' && /^topP must be a number in \(0, 1\]/.test(e.message));
  await assert.rejects(engine.ask({ images: [{ bytes: new Uint8Array([1, 2, 3]) }], question: 'q' }), (e: Error) => errorKind(e) === 'image');
});

test('CLI `generate --json` in its own process reproduces case a and the official counts', async () => {
  const cli = join(repoRoot, 'out', 'server', 'cli', 'main.js');
  const common = ['generate', '--model', modelDir, '--prompt-ids', JSON.stringify(a.prompt_ids), '--gen-length', '32', '--steps', '8', '--strategy', 'static', '--threads', '1', '--json'];
  const args = [...common, '--verify-steps', '1'];
  const unfused = await promisify(execFile)(process.execPath, [cli, ...args, '--no-fused-commit']);
  const lines = unfused.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  // The contract's keys first, in order; later keys are only ever added.
  const one = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.deepEqual(Object.keys(one).slice(0, 3), ['output_ids', 'forwards', 'backend']);
  assert.equal(one.backend, 'onnx');
  assert.deepEqual({ output_ids: one.output_ids, forwards: one.forwards }, { output_ids: a.output_ids, forwards: a.forwards });
  const fused = JSON.parse((await promisify(execFile)(process.execPath, [cli, ...args])).stdout) as { output_ids: number[] };
  assert.deepEqual(fused.output_ids, a.output_ids);
  // Verified multi-step decoding: same ids, fewer verifying forwards, the drafts accepted reported.
  type Out = { output_ids: number[]; forwards: { denoise: number }; drafts: { verified: number; accepted: number }; verify_steps: number; tokens_per_forward: number };
  const k1 = JSON.parse((await promisify(execFile)(process.execPath, [cli, ...args])).stdout) as Out;
  const k4 = JSON.parse((await promisify(execFile)(process.execPath, [cli, ...common, '--verify-steps', '4'])).stdout) as Out;
  assert.deepEqual(k4.output_ids, a.output_ids);
  assert.equal(k1.verify_steps, 1);
  assert.equal(k4.verify_steps, 4);
  assert.deepEqual(k1.drafts, { verified: 0, accepted: 0 });
  assert.equal(k4.forwards.denoise + k4.drafts.accepted, k1.forwards.denoise);
  assert.ok(k4.drafts.accepted > 0 && k4.tokens_per_forward > k1.tokens_per_forward);
  await assert.rejects(promisify(execFile)(process.execPath, [cli, ...common, '--verify-steps', '0']), (e: { code: number; stderr: string }) => e.code === 2 && /--verify-steps must be "auto" or an integer in \[1, 16\], got "0"/.test(e.stderr));
});
