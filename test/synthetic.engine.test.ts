import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Engine } from '../server/engine/api';
import { defaultModelDir, isModelDir } from '../server/engine/defaultModel';
import { createEngine } from '../server/engine/engine';
import { ArDecoder } from '../server/synthetic/arDecode';
import { arBaselineDir } from '../server/synthetic/evaluate';
import { drawItems, isCorrect } from '../server/synthetic/generator';
import { renderPng } from '../server/synthetic/render';
import type { QA } from '../server/synthetic/scenes';
import { repoRoot } from './helpers/paths';

/**
 * The shipped default model answers questions about generated images it never trained on (split "eval": disjoint
 * from the trainer's keys), through the real engine, and the README's example command gets its answer right.
 */
const modelDir = defaultModelDir();
const examplesDir = join(repoRoot, 'media', 'examples');

/** Fixed held-out set: seed 4242, first 48 items. */
const HELD_OUT = { seed: 4242, count: 48 };

let engine: Engine;
before(async () => {
  // The default model ships with the project: without it these tests fail (here, with the reason), never skip.
  assert.ok(isModelDir(modelDir), `${modelDir} is missing: the embedded default model ships with the project`);
  engine = await createEngine({ modelDir, provider: 'cpu', threads: 1 });
});
after(async () => {
  await engine?.dispose();
});

test('block diffusion answers held-out generated questions', async () => {
  const items = drawItems(HELD_OUT.seed, 'eval', HELD_OUT.count);
  const wrong: string[] = [];
  let nonArrow = 0;
  let nonArrowWrong = 0;
  for (const it of items) {
    const r = await engine.ask({ images: [{ bytes: await renderPng(it.svg) }], question: it.question, options: { maxNewTokens: 16 } });
    const ok = isCorrect(r.text, it.answer);
    if (!ok) wrong.push(`${it.key} ${it.question} -> ${JSON.stringify(r.text)} (want ${it.answer})`);
    if (it.kind !== 'arrow') {
      nonArrow++;
      nonArrowWrong += ok ? 0 : 1;
    }
  }
  const detail = `${wrong.length}/${items.length} wrong:\n${wrong.join('\n')}`;
  // Measured when the model was committed: 41/48 right, all 7 misses on arrow diagrams (the model's weakest
  // scene: direction of the arrow); every other scene kind is answered almost perfectly.
  assert.ok(wrong.length <= 10, detail);
  assert.ok(nonArrowWrong <= Math.floor(nonArrow * 0.05), detail);
});

test('dynamic remasking decodes several tokens per forward with the same answers', async () => {
  const items = drawItems(HELD_OUT.seed, 'eval', 16);
  let tokens = 0;
  let forwards = 0;
  let agree = 0;
  for (const it of items) {
    const png = await renderPng(it.svg);
    const stat = await engine.ask({ images: [{ bytes: png }], question: it.question, options: { maxNewTokens: 16 } });
    const dyn = await engine.ask({ images: [{ bytes: png }], question: it.question, options: { maxNewTokens: 16, strategy: 'dynamic', threshold: 0.9 } });
    agree += stat.text === dyn.text ? 1 : 0;
    tokens += dyn.stats.generatedTokens;
    const f = dyn.stats.forwards;
    forwards += f.prefill + f.denoise + f.commit;
  }
  assert.ok(agree >= items.length - 1, `${agree}/${items.length} answers agree`);
  assert.ok(tokens / forwards >= 2, `tokens per forward ${tokens / forwards}`);
});

test('the shipped example images are answered', async () => {
  const examples = JSON.parse(readFileSync(join(examplesDir, 'examples.json'), 'utf8')) as { file: string; qas: QA[] }[];
  const wrong: string[] = [];
  let total = 0;
  for (const ex of examples) {
    for (const qa of ex.qas) {
      total++;
      const r = await engine.ask({ images: [{ path: join(examplesDir, ex.file) }], question: qa.question, options: { maxNewTokens: 16 } });
      if (!isCorrect(r.text, qa.answer)) wrong.push(`${ex.file}: ${qa.question} -> ${JSON.stringify(r.text)} (want ${qa.answer})`);
    }
  }
  assert.ok(wrong.length <= total * 0.15, `${wrong.length}/${total} wrong:\n${wrong.join('\n')}`);
});

test('the AR baseline decodes one token per forward', async () => {
  const arDir = arBaselineDir(modelDir);
  assert.ok(arDir, `${modelDir} has no AR baseline (models/default/ar ships with the project)`);
  const ar = await ArDecoder.load(arDir, 1);
  try {
    const items = drawItems(HELD_OUT.seed, 'eval', 12);
    let right = 0;
    for (const it of items) {
      const r = await ar.ask(await renderPng(it.svg), it.question, 16);
      right += isCorrect(r.text, it.answer) ? 1 : 0;
      assert.equal(r.forwards, r.ids.length);
    }
    assert.ok(right >= 9, `${right}/${items.length}`);
  } finally {
    await ar.dispose();
  }
});

test("the README's main command answers about a shipped example", async () => {
  // Exactly the command the README shows (dist/ must be built, as `npm test` does).
  const { stdout } = await promisify(execFile)(process.execPath, [join(repoRoot, 'bin', 'diffusionvl.js'), 'ask', 'media/examples/chart-1.png', 'Which bar is the tallest?'], {
    cwd: repoRoot,
  });
  assert.equal(stdout.trim(), 'purple');
});
