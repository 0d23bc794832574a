import { closeSync, openSync, writeSync } from 'node:fs';
import { copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelManifest, Precision } from '../engine/manifest';
import { f32ToF16Array } from '../engine/half';
import { sha256File } from './fileHash';
import type { ConvertProgress } from './convertOptions';

/**
 * What every architecture writes the same way: the source hashes, the embedding table and tokenizer the engine
 * reads directly, and the text half of the manifest. The vision side is each architecture's own.
 */

type TextConfig = {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
};
type Progress = (p: ConvertProgress) => void;

/** SHA-256 of every checkpoint file and the tokenizer, recorded in the manifest. */
export async function hashSources(files: readonly { name: string; path: string; bytes: number }[], tokenizerSource: string, progress: Progress): Promise<ModelManifest['source']['files']> {
  const hashed = [...files, { name: 'tokenizer.json', path: tokenizerSource, bytes: (await stat(tokenizerSource)).size }];
  const sources = [];
  for (const [i, f] of hashed.entries()) {
    progress({ stage: 'hash', done: i, total: hashed.length, tensor: f.name });
    sources.push({ name: f.name, bytes: f.bytes, sha256: await sha256File(f.path) });
  }
  return sources;
}

/**
 * Writes `embeddings.bin` (rows read by the engine straight from the file; fp16 halves it for the reduced
 * precisions) and copies the tokenizer. Reports the embedding as tensor number `done` of `total`.
 */
export async function writeEmbeddingsAndTokenizer(
  ckpt: { readF32(name: string, shape: number[]): Promise<Float32Array> },
  text: TextConfig,
  dir: string,
  precision: Precision,
  tokenizerSource: string,
  count: { done: number; total: number; progress: Progress },
): Promise<ModelManifest['embeddings']> {
  const dtype = precision === 'fp32' ? 'float32' : 'float16';
  const { done, total, progress } = count;
  progress({ stage: 'embeddings', done, total, tensor: 'model.embed_tokens.weight' });
  const { vocabSize: V, hiddenSize: H } = text;
  writeRows(join(dir, 'embeddings.bin'), await ckpt.readF32('model.embed_tokens.weight', [V, H]), H, dtype);
  progress({ stage: 'tokenizer', done: done + 1, total });
  await copyFile(tokenizerSource, join(dir, 'tokenizer.json'));
  return { file: 'embeddings.bin', dtype, rows: V, cols: H };
}

/** The manifest's text dimensions, from the checkpoint's text config. */
export function textDims(t: TextConfig): ModelManifest['text'] {
  return {
    hiddenSize: t.hiddenSize,
    numLayers: t.numLayers,
    numHeads: t.numHeads,
    numKvHeads: t.numKvHeads,
    headDim: t.headDim,
    intermediateSize: t.intermediateSize,
    vocabSize: t.vocabSize,
    ropeTheta: t.ropeTheta,
    rmsNormEps: t.rmsNormEps,
    tiedLmHead: t.tieWordEmbeddings,
  };
}

/** The graph and tokenizer file names every converted folder uses. */
export const MODEL_FILES = { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx', vision: 'vision.onnx', tokenizer: 'tokenizer.json' } as const;

/** Writes a row-major table in `dtype`, narrowing a slab of rows at a time (no second copy of the table). */
export function writeRows(path: string, table: Float32Array, width: number, dtype: 'float32' | 'float16'): void {
  const fd = openSync(path, 'w');
  const slab = 4096 * width;
  try {
    for (let at = 0; at < table.length; at += slab) {
      const part = table.subarray(at, Math.min(table.length, at + slab));
      const bytes = dtype === 'float32' ? new Uint8Array(part.buffer, part.byteOffset, part.byteLength) : new Uint8Array(f32ToF16Array(part).buffer);
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    }
  } finally {
    closeSync(fd);
  }
}
