import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { DecoderKind, GgufType, ModelDecoders, ModelFiles } from '../engine/manifest';
import type { QwenVLTextConfig } from './checkpointConfig';
import type { ConvertProgress } from './convertOptions';
import { ggufFileName } from '../engine/backends/llamacpp/ggmlTypes';
import { quantizeGguf } from './gguf/quantize';
import { qwen2TensorMap, writeQwen2Gguf } from './gguf/qwen2Gguf';
import { readGgufVocab } from './gguf/vocab';
import { buildDecoder, buildLmHead, type BuildOptions, type TensorReader } from './qwen2';
import { MODEL_FILES } from './textSide';

/**
 * The text decoder and LM head in the forms `--decoder` asks for — ONNX graphs (ONNX Runtime), a GGUF file
 * (llama.cpp), or both — the same for every architecture, whose text models are all Qwen2.
 */

export interface TextDecoderJob {
  dir: string;
  decoder: DecoderKind;
  ggufType?: GgufType;
  text: QwenVLTextConfig;
  tokens: { bos?: number; eos: number; pad: number };
  /** The checkpoint folder (its name becomes the GGUF's general.name). */
  checkpointDir: string;
  /** The tokenizer.json the folder ships (also the GGUF's vocabulary), if any. */
  tokenizerSource?: string;
  stageOpts: (stage: ConvertProgress['stage']) => BuildOptions;
  onNotice?: (message: string) => void;
}

/** How many tensor reads the text decoders take (the progress total). */
export function textDecoderReads(text: QwenVLTextConfig, decoder: DecoderKind): number {
  const onnx = text.numLayers * 12 + 3 + (text.tieWordEmbeddings ? 1 : 0);
  const gguf = qwen2TensorMap(text).length + 1; // + the quantiser's pass
  return (decoder === 'gguf' ? 0 : onnx) + (decoder === 'onnx' ? 0 : gguf);
}

/** Writes the decoders into `job.dir`; returns what the manifest records of them. */
export async function writeTextDecoders(ckpt: TensorReader, job: TextDecoderJob): Promise<{ decoders: ModelDecoders; files: Pick<ModelFiles, 'decoder' | 'lmHead'> }> {
  const decoders: ModelDecoders = {};
  const files: Pick<ModelFiles, 'decoder' | 'lmHead'> = {};
  if (job.decoder !== 'gguf') {
    await buildDecoder(ckpt, { text: job.text }, join(job.dir, MODEL_FILES.decoder), job.stageOpts('decoder'));
    await buildLmHead(ckpt, { text: job.text }, join(job.dir, MODEL_FILES.lmHead), job.stageOpts('lm_head'));
    decoders.onnx = { decoder: MODEL_FILES.decoder, lmHead: MODEL_FILES.lmHead };
    Object.assign(files, { decoder: decoders.onnx.decoder, lmHead: decoders.onnx.lmHead });
  }
  if (job.decoder !== 'onnx') {
    const type = job.ggufType;
    if (!type) throw new Error('a GGUF decoder needs its type (fp32, fp16, q8_0, q4_0 or q4_k_m)');
    const file = ggufFileName(type);
    await writeGguf(ckpt, job, type, file);
    decoders.gguf = { file, type };
  }
  return { decoders, files };
}

async function writeGguf(ckpt: TensorReader, job: TextDecoderJob, type: GgufType, file: string): Promise<void> {
  let vocab;
  if (job.tokenizerSource) {
    const v = await readGgufVocab(job.tokenizerSource, job.text.vocabSize);
    if ('unsupported' in v) job.onNotice?.(`GGUF: the tokenizer is not written into the file (${v.unsupported}); llama.cpp loads it without a vocabulary`);
    else vocab = v;
  }
  const gguf = job.stageOpts('gguf');
  const direct = type === 'fp32' || type === 'fp16';
  // Quantised types: F16 first (as llama.cpp's own route does; it holds bf16 weights exactly between 6.1e-5 and
  // 65504 in magnitude, smaller ones round as F16 subnormals), then llama.cpp's quantiser; the F16 file is removed.
  const written = direct ? file : ggufFileName('fp16').replace(/\.gguf$/, '.unquantized.gguf');
  const path = join(job.dir, written);
  await writeQwen2Gguf(ckpt, path, { type: direct ? type : 'fp16', name: basename(job.checkpointDir), text: job.text, tokens: job.tokens, vocab, onTensor: gguf.onTensor });
  if (direct) return;
  try {
    job.stageOpts('quantize').onTensor(file);
    await quantizeGguf(path, join(job.dir, file), type, (_level, text) => job.onNotice?.(`llama.cpp quantiser: ${text}`));
  } finally {
    await rm(path, { force: true });
  }
}
