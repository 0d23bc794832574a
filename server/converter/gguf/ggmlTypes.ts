/**
 * The numbers of the GGUF format (v3) and of ggml/llama.cpp this converter writes, from gguf-py's constants and
 * llama.h of the llama.cpp build the runtime loads.
 */
import type { GgufType } from '../../engine/manifest';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
/** Tensor data alignment (the format's default; also written as general.alignment). */
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types. */
export const enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types the converter writes itself (quantised ones come from llama.cpp's quantiser). */
export const GGML_TYPE = { F32: 0, F16: 1 } as const;
export type WrittenTensorType = keyof typeof GGML_TYPE;

/** `llama_ftype` (general.file_type and the quantiser's target) for each GGUF decoder type. */
export const LLAMA_FTYPE: Record<GgufType, number> = { fp32: 0, fp16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15 };

/** llama.cpp token types (tokenizer.ggml.token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** The GGUF file name a converted folder uses for each decoder type. */
export function ggufFileName(type: GgufType): string {
  return `decoder.${type}.gguf`;
}

/** Names of the ggml tensor types (ggml.h's `ggml_type`) the quantiser writes for our GGUF types, fallbacks
 * included, for saying what a quantised file holds. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  20: 'IQ4_NL',
  30: 'BF16',
};
