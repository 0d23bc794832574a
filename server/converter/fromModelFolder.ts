import { existsSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { isModelDir } from '../engine/defaultModel';
import { MANIFEST_FILE, manifestDecoders, readManifest, type DecoderKind, type GgufType, type ModelManifest } from '../engine/manifest';
import { CONVERTER_VERSION, type ConvertProgress } from './convertOptions';
import { writeFolderAtomically } from './outFolder';
import { Qwen2Readback } from './qwen2Readback';
import { textDecoderReads, writeTextDecoders } from './textDecoders';

/**
 * `convert <model-folder> <out> --decoder gguf|both`: adds a GGUF decoder to a converted **fp32** model folder whose
 * checkpoint is not at hand (the embedded default model's, for one). The text weights are read back from the fp32
 * ONNX decoder, head and embedding table, which hold the checkpoint's values exactly; everything else — the vision
 * tower, the embedding table, the tokenizer, and with `both` the ONNX decoder — is copied unchanged, and the manifest
 * gains the GGUF decoder. fp16 and int4 folders are refused: their weights are rounded, not the originals.
 */

export interface FolderConvertOptions {
  decoder: DecoderKind;
  ggufType?: GgufType;
  onProgress?: (p: ConvertProgress) => void;
  onNotice?: (message: string) => void;
}

/** Whether `dir` is a converted model folder (its manifest, no checkpoint config) rather than a checkpoint. */
export function isConvertedModelFolder(dir: string): boolean {
  return isModelDir(dir) && !existsSync(join(dir, 'config.json'));
}

export async function convertModelFolder(modelDir: string, outDir: string, opts: FolderConvertOptions): Promise<ModelManifest> {
  const src = resolve(modelDir);
  if (resolve(outDir) === src) throw new Error(`${outDir}: write the new model folder beside ${modelDir}, not over it`);
  const m = readManifest(src);
  if (m.precision !== 'fp32' || m.embeddings.dtype !== 'float32') {
    throw new Error(
      `${modelDir} is an ${m.precision} model folder: its weights are rounded (${m.precision === 'int4' ? '4-bit' : 'half precision'}), not the originals, so a GGUF made from them would not be the model; convert its checkpoint, or an fp32 folder of it, instead`,
    );
  }
  if (opts.decoder === 'onnx') throw new Error(`${modelDir} already has its ONNX decoder; --decoder gguf or both adds a GGUF decoder to a model folder`);
  const onnx = manifestDecoders(m).onnx;
  if (!onnx) throw new Error(`${modelDir} has no ONNX decoder to read the text weights from (it holds only a GGUF decoder)`);
  const ggufType = opts.ggufType;
  if (!ggufType) throw new Error('a GGUF decoder needs its type (fp32, fp16, q8_0, q4_0 or q4_k_m)');

  // The manifest's text dimensions as a checkpoint config states them (its context length is not recorded: the
  // GGUF states the writer's default).
  const text = { ...m.text, tieWordEmbeddings: m.text.tiedLmHead };
  const progress = opts.onProgress ?? (() => {});
  const total = textDecoderReads(text, 'gguf') + 1;
  let done = 0;
  const stageOpts = (stage: ConvertProgress['stage']) => ({
    precision: m.precision,
    compute: 'float32' as const,
    kvDtype: m.kvDtype,
    onTensor: (tensor: string) => progress({ stage, done: done++, total, tensor }),
  });

  return writeFolderAtomically(outDir, async (dir) => {
    const copied = [m.files.vision, m.embeddings.file, m.files.tokenizer, m.architecture === 'diffusionvl_qwen' ? m.image.newlineFile : undefined];
    if (opts.decoder === 'both') copied.push(onnx.decoder, onnx.lmHead);
    for (const f of copied) {
      if (!f) continue;
      await copyFile(join(src, f), join(dir, f));
      // An ONNX graph's weights live in the data file beside it.
      if (f.endsWith('.onnx') && existsSync(join(src, `${f}.data`))) await copyFile(join(src, `${f}.data`), join(dir, `${f}.data`));
    }
    const tokenizer = m.files.tokenizer ? join(src, m.files.tokenizer) : undefined;
    const written = await writeTextDecoders(new Qwen2Readback(src, m, onnx), {
      dir,
      decoder: 'gguf',
      ggufType,
      text,
      tokens: m.tokens,
      checkpointDir: src,
      tokenizerSource: tokenizer,
      stageOpts,
      onNotice: opts.onNotice,
    });
    const decoders = { ...(opts.decoder === 'both' ? { onnx } : {}), gguf: written.decoders.gguf };
    const files = { ...m.files, ...(opts.decoder === 'both' ? {} : { decoder: undefined, lmHead: undefined }) };
    const out: ModelManifest = { ...m, files, decoders, converter: { name: 'diffusionvl-vscode', version: CONVERTER_VERSION } };
    await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(out, null, 2) + '\n');
    progress({ stage: 'done', done: total, total, tensor: basename(outDir) });
    return out;
  });
}
