import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../../../server/converter/checkpoint';
import type { Json } from '../../../server/converter/checkpointConfig';
import { splitParts } from './scratch';
import { invariant } from '../target';

/** Writes each present part as its file in `dir` (an absent part removes the file) and reads them back as the openers do. */
export async function readParts(dir: string, data: Buffer, files: string[]): Promise<(Json | undefined)[]> {
  const parts = splitParts(data, files.length);
  const out: (Json | undefined)[] = [];
  for (let i = 0; i < files.length; i++) {
    const path = join(dir, files[i]);
    const part = parts[i];
    if (part === undefined) {
      if (existsSync(path)) rmSync(path);
      out.push(undefined);
      continue;
    }
    writeFileSync(path, part);
    out.push(await readJson(path));
  }
  return out;
}

/** What every caller of a parsed config relies on: positive integer sizes, special ids inside the vocabulary. */
export function checkTextAndTokens(text: { vocabSize: number; hiddenSize: number; numLayers: number; numHeads: number; numKvHeads: number; headDim: number; intermediateSize: number }, tokens: { eos: number; pad: number; mask: number }): void {
  for (const k of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'intermediateSize'] as const) {
    invariant(Number.isSafeInteger(text[k]) && text[k] > 0, `text ${k} = ${text[k]}`);
  }
  for (const [k, v] of Object.entries({ eos: tokens.eos, pad: tokens.pad, mask: tokens.mask })) invariant(Number.isInteger(v) && v >= 0 && v < text.vocabSize, `token id ${k} = ${v} (vocab ${text.vocabSize})`);
}

/** A two-layer store: only the configs that ask for at most two layers get their expected tensors listed. */
export function twoLayerStore(name: string): boolean {
  return !/\.(?:layers|blocks)\.(?!0\.|1\.)\d+\./.test(name);
}
