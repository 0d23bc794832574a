import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { readManifest } from '../server/engine/manifest';
import { SYSTEM_PROMPT } from '../server/engine/prompt';
import { TextTokenizer } from '../server/engine/tokenizer';
import { exampleScenes, EXAMPLES_SEED } from '../server/synthetic/examples';
import { drawItems, isCorrect, itemAt, sceneAt } from '../server/synthetic/generator';
import { renderPng, renderRgb } from '../server/synthetic/render';
import { Rng } from '../server/synthetic/rng';
import { BOX_LABELS, QUESTION_TYPES, SCENE_KINDS, WORDS } from '../server/synthetic/scenes';
import { hasGlyph } from '../server/synthetic/strokeFont';
import { buildTokenizer } from '../server/synthetic/tokenizerBuilder';
import { tokenizerCorpus, TOKENIZER_MERGES } from '../server/synthetic/dataset';
import { repoRoot } from './helpers/paths';

const modelDir = join(repoRoot, 'models', 'default');
const examplesDir = join(repoRoot, 'media', 'examples');

function digest(items: { svg: string; question: string; answer: string }[]): string {
  const h = createHash('sha256');
  for (const it of items) h.update(it.svg).update('\0').update(it.question).update('\0').update(it.answer).update('\0');
  return h.digest('hex');
}

test('PRNG is a pure function of its key', () => {
  const a = new Rng('1/train/0');
  const b = new Rng('1/train/0');
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(Array.from({ length: 5 }, () => b.nextU32()), xs);
  assert.notDeepEqual(Array.from({ length: 5 }, () => new Rng('1/train/1').nextU32()), xs);
  // Pinned: a change here silently changes every dataset, example and evaluation.
  assert.deepEqual(xs, [26520570, 1412411915, 2636836686, 37491957, 1451604563]);
});

test('items are deterministic and pinned across machines', () => {
  const items = drawItems(1, 'train', 50);
  assert.equal(digest(items), digest(drawItems(1, 'train', 50)));
  // The generator is pure JavaScript arithmetic on integers and short decimals: its output is the same everywhere.
  assert.equal(digest(items), 'a98e95267135edbbb8ca1ce6e29b76ab7dc1502a33987ee3e55dead7999243a5');
});

test('splits and seeds draw different images', () => {
  const train = new Set(drawItems(1, 'train', 200).map((i) => i.svg));
  for (const split of ['val', 'test', 'eval'] as const) {
    const other = drawItems(1, split, 200);
    const shared = other.filter((i) => train.has(i.svg)).length;
    assert.ok(shared <= 2, `${split}: ${shared} images identical to training images`);
  }
  assert.notEqual(digest(drawItems(1, 'eval', 20)), digest(drawItems(2, 'eval', 20)));
  assert.deepEqual(itemAt(7, 'eval', 3), itemAt(7, 'eval', 3));
});

test('every scene kind and question type is drawn', () => {
  const items = drawItems(3, 'eval', 600);
  for (const k of SCENE_KINDS) assert.ok(items.some((i) => i.kind === k), k);
  for (const t of QUESTION_TYPES) assert.ok(items.some((i) => i.type === t), t);
  for (const i of items) assert.ok(i.answer.length > 0 && i.question.endsWith('?') !== (i.type === 'caption'));
});

test('the stroke font covers every label and word', () => {
  for (const w of [...WORDS, ...BOX_LABELS]) for (const ch of w) assert.ok(hasGlyph(ch), ch);
});

test('rendering is deterministic and matches the shipped examples', async () => {
  const svg = sceneAt(5, 'eval', 0).svg;
  assert.deepEqual(await renderRgb(svg), await renderRgb(svg));
  const png = await renderPng(svg);
  const meta = await sharp(png).metadata();
  assert.equal(meta.width, 112);
  assert.equal(meta.channels, 3);
  const examples = JSON.parse(readFileSync(join(examplesDir, 'examples.json'), 'utf8')) as { file: string }[];
  assert.ok(examples.length >= 4);
  const scenes = exampleScenes(examples.length / 4);
  for (const s of scenes) {
    const shipped = await sharp(readFileSync(join(examplesDir, `${s.name}.png`))).raw().toBuffer();
    assert.deepEqual(shipped, await renderRgb(sceneAt(EXAMPLES_SEED, 'eval', s.index).svg), s.name);
  }
});

test('exact match ignores surrounding space and one trailing period only', () => {
  assert.ok(isCorrect(' red. ', 'red'));
  assert.ok(!isCorrect('Red', 'red'));
  assert.ok(!isCorrect('red circle', 'red'));
});

test('the shipped tokenizer is the one the builder makes and round-trips the data', () => {
  assert.ok(existsSync(join(modelDir, 'tokenizer.json')), `${modelDir}/tokenizer.json is missing: the default model ships with the project`);
  const shipped = JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')) as object;
  const built = buildTokenizer(tokenizerCorpus(1, 2000), SYSTEM_PROMPT, TOKENIZER_MERGES);
  assert.deepEqual(shipped, JSON.parse(JSON.stringify(built.json)));
  const tok = new TextTokenizer(shipped);
  assert.deepEqual(tok.encode(SYSTEM_PROMPT), [built.special.systemPrompt]);
  for (const it of drawItems(11, 'eval', 300)) {
    for (const s of [it.question, it.answer]) assert.equal(tok.decode(tok.encode(s)), s);
    assert.ok(tok.encode(it.answer).length <= 8, it.answer);
  }
  // Any text still encodes (byte-level), even words the generator never uses.
  assert.equal(tok.decode(tok.encode('Ünïcode ✓ 123')), 'Ünïcode ✓ 123');
  const m = readManifest(modelDir);
  assert.equal(m.tokens.eos, built.special.imEnd);
  assert.equal(m.tokens.pad, built.special.endoftext);
  assert.equal(m.tokens.mask, built.size);
  assert.equal(m.embeddings.rows, built.size + 1);
});
