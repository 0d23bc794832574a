import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chatPrompt, SYSTEM_PROMPT, tokenizeWithImages } from '../engine/prompt';
import { TextTokenizer } from '../engine/tokenizer';
import { preprocessImage } from '../engine/arch/qwenvl/preprocess';
import { itemAt, sceneAt, type Split } from './generator';
import { renderPng, renderRgb } from './render';
import { IMAGE_SIZE, type QA } from './scenes';
import { buildTokenizer } from './tokenizerBuilder';

/**
 * Writes what the PyTorch trainer reads: the tokenizer, and per split the rendered images as raw RGB bytes plus
 * prompt/answer token ids produced by the engine's own prompt template and tokenizer, so training sees exactly the
 * ids inference will build. Pixels are normalised in Python with the processor's formula; `check.*` holds the
 * engine's preprocessing of a few images so the trainer can assert it matches bit for bit.
 */

export const IMAGE_PLACEHOLDER = -200;
/**
 * Normalisation the synthetic model uses (preprocessor_config.json image_mean / image_std): white maps to 0. With
 * CLIP's statistics a white background is a large constant vector in every patch; on these mostly-white diagrams the
 * patch embedding grew to match it and swamped the ViT blocks' residual contributions (training stalled at ~30 %).
 */
export const SYNTHETIC_MEAN: [number, number, number] = [1, 1, 1];
export const SYNTHETIC_STD: [number, number, number] = [0.5, 0.5, 0.5];
export const TOKENIZER_MERGES = 320;

export interface DatasetOptions {
  outDir: string;
  seed: number;
  trainScenes: number;
  valItems: number;
  testItems: number;
  /** Image bounds the model will use (config min_pixels / max_pixels). */
  minPixels: number;
  maxPixels: number;
  log?: (line: string) => void;
}

interface Row {
  img: number;
  type: string;
  prompt: number[];
  answer: number[];
}

/** The tokenizer's training text: every prompt and answer of the first scenes of the train split. */
export function tokenizerCorpus(seed: number, scenes: number): string[] {
  const texts: string[] = [];
  for (let i = 0; i < scenes; i++) {
    for (const qa of sceneAt(seed, 'train', i).qas) texts.push(chatPrompt(qa.question, 1), qa.answer);
  }
  return texts;
}

export async function writeDataset(o: DatasetOptions): Promise<void> {
  const log = o.log ?? (() => {});
  mkdirSync(o.outDir, { recursive: true });
  const built = buildTokenizer(tokenizerCorpus(o.seed, 2000), SYSTEM_PROMPT, TOKENIZER_MERGES);
  writeFileSync(join(o.outDir, 'tokenizer.json'), JSON.stringify(built.json));
  const tok = new TextTokenizer(built.json);
  const imEnd = built.special.imEnd;
  const encodeQa = (img: number, qa: QA): Row => ({
    img,
    type: qa.type,
    prompt: tokenizeWithImages(chatPrompt(qa.question, 1), (t) => tok.encode(t), IMAGE_PLACEHOLDER),
    answer: [...tok.encode(qa.answer), imEnd],
  });
  const splits: { split: Split; count: number; allQuestions: boolean }[] = [
    { split: 'train', count: o.trainScenes, allQuestions: true },
    { split: 'val', count: o.valItems, allQuestions: false },
    { split: 'test', count: o.testItems, allQuestions: false },
  ];
  const summary: Record<string, unknown> = {};
  for (const { split, count, allQuestions } of splits) {
    const pixels = Buffer.alloc(count * IMAGE_SIZE * IMAGE_SIZE * 3);
    const rows: Row[] = [];
    const digest = createHash('sha256');
    for (let i = 0; i < count; i++) {
      let svg: string;
      if (allQuestions) {
        const scene = sceneAt(o.seed, split, i);
        svg = scene.svg;
        for (const qa of scene.qas) rows.push(encodeQa(i, qa));
      } else {
        const item = itemAt(o.seed, split, i);
        svg = item.svg;
        rows.push(encodeQa(i, item));
      }
      const rgb = await renderRgb(svg);
      rgb.copy(pixels, i * rgb.length);
      digest.update(rgb);
      if (i % 1000 === 999) log(`${split}: ${i + 1}/${count} images`);
    }
    writeFileSync(join(o.outDir, `${split}.rgb`), pixels);
    writeFileSync(join(o.outDir, `${split}.jsonl`), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    summary[split] = { images: count, items: rows.length, sha256: digest.digest('hex') };
  }

  // The engine's preprocessing of the first validation images, for the trainer's bit-exactness check.
  const checks: Float32Array[] = [];
  let grid: number[] = [];
  for (let i = 0; i < 3; i++) {
    const png = await renderPng(itemAt(o.seed, 'val', i).svg);
    const pre = await preprocessImage(png, {
      minPixels: o.minPixels,
      maxPixels: o.maxPixels,
      patchSize: 14,
      temporalPatchSize: 2,
      mergeSize: 2,
      mean: SYNTHETIC_MEAN,
      std: SYNTHETIC_STD,
    });
    checks.push(pre.pixelValues);
    grid = pre.gridThw;
  }
  const all = new Float32Array(checks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of checks) {
    all.set(c, off);
    off += c.length;
  }
  writeFileSync(join(o.outDir, 'check.f32'), Buffer.from(all.buffer));

  const meta = {
    seed: o.seed,
    imageSize: IMAGE_SIZE,
    mean: SYNTHETIC_MEAN,
    std: SYNTHETIC_STD,
    minPixels: o.minPixels,
    maxPixels: o.maxPixels,
    tokenizerSize: built.size,
    special: built.special,
    maskId: built.size,
    imagePlaceholder: IMAGE_PLACEHOLDER,
    check: { images: 3, split: 'val', gridThw: grid },
    splits: summary,
  };
  writeFileSync(join(o.outDir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
}
