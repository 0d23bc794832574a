/**
 * The numbers of the GGUF format (v3) and of ggml/llama.cpp this converter writes, from gguf-py's constants and
 * llama.h of the llama.cpp build the runtime loads.
 */
import type { GgufType } from '../../manifest';

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

/** Bytes of each fixed-size GGUF value type (STRING and ARRAY have none: a length comes first). */
export const VALUE_TYPE_BYTES: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/**
 * Every ggml tensor type a GGUF file may hold: [name, values per block, bytes per block] (gguf-py's
 * GGML_QUANT_SIZES; the ids of removed types are absent). Quantised types store whole blocks along ne[0].
 */
export const GGML_TYPE_LAYOUT: Readonly<Record<number, readonly [string, number, number]>> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  9: ['Q8_1', 32, 40],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  15: ['Q8_K', 256, 292],
  16: ['IQ2_XXS', 256, 66],
  17: ['IQ2_XS', 256, 74],
  18: ['IQ3_XXS', 256, 98],
  19: ['IQ1_S', 256, 50],
  20: ['IQ4_NL', 32, 18],
  21: ['IQ3_S', 256, 110],
  22: ['IQ2_S', 256, 82],
  23: ['IQ4_XS', 256, 136],
  24: ['I8', 1, 1],
  25: ['I16', 1, 2],
  26: ['I32', 1, 4],
  27: ['I64', 1, 8],
  28: ['F64', 1, 8],
  29: ['IQ1_M', 256, 56],
  30: ['BF16', 1, 2],
  34: ['TQ1_0', 256, 54],
  35: ['TQ2_0', 256, 66],
  39: ['MXFP4', 32, 17],
};

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
