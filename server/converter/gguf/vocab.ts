import { readFile } from 'node:fs/promises';
import { TOKEN_TYPE } from '../../engine/backends/llamacpp/ggmlTypes';

/** The tokenizer metadata of a llama.cpp BPE ("gpt2") model, as llama.cpp's own converter derives it. */
export interface GgufVocab {
  pre: string;
  tokens: string[];
  types: Int32Array;
  merges: string[];
}

/** The Qwen2 pre-tokenizer split llama.cpp implements as pre-tokenizer `qwen2`. */
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: { type?: string; pretokenizers?: { type?: string; pattern?: { Regex?: string } }[] };
}

/** Added tokens llama.cpp's converter treats as control tokens even when not flagged special. */
function looksSpecial(t: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) || (t.startsWith('<|') && t.endsWith('|>')) || (t.startsWith('<｜') && t.endsWith('｜>')) || (t.startsWith('<unused') && t.endsWith('>'));
}

/**
 * Reads a Hugging Face byte-level BPE tokenizer.json into llama.cpp's form: one token string per id up to the
 * model's vocabulary size (ids without a token become `[PAD<id>]`, unused — the diffusion mask row among them),
 * added tokens as control (special) or user-defined, and the merges as "a b" strings. Returns a reason instead when
 * llama.cpp's `qwen2` tokenizer would not reproduce this one.
 */
export async function readGgufVocab(path: string, vocabSize: number): Promise<GgufVocab | { unsupported: string }> {
  const json = JSON.parse(await readFile(path, 'utf8')) as TokenizerJson;
  const model = json.model;
  if (model?.type !== 'BPE' || !model.vocab || !model.merges) return { unsupported: `not a BPE tokenizer (${model?.type ?? 'no model'})` };
  const splits = json.pre_tokenizer?.type === 'Sequence' ? json.pre_tokenizer.pretokenizers ?? [] : [];
  const regex = splits.find((p) => p.type === 'Split')?.pattern?.Regex;
  if (regex !== QWEN2_SPLIT || !splits.some((p) => p.type === 'ByteLevel')) return { unsupported: 'its pre-tokenizer is not the Qwen2 one' };

  const tokens: (string | undefined)[] = new Array<string | undefined>(vocabSize);
  const types = new Int32Array(vocabSize).fill(TOKEN_TYPE.UNUSED);
  const place = (id: number, text: string, type: number): void => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`${path}: token ${JSON.stringify(text)} has id ${id}, outside the model's ${vocabSize}-row vocabulary`);
    tokens[id] = text;
    types[id] = type;
  };
  for (const [text, id] of Object.entries(model.vocab)) place(id, text, TOKEN_TYPE.NORMAL);
  for (const a of json.added_tokens ?? []) place(a.id, a.content, a.special || looksSpecial(a.content) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED);
  const filled = Array.from(tokens, (t, i) => t ?? `[PAD${i}]`);
  const merges = model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  return { pre: 'qwen2', tokens: filled, types, merges };
}
