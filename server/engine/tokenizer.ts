import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DiffusionVLError } from './errors';
import type { Tokenizer as TokenizerType } from '@huggingface/tokenizers' with { 'resolution-mode': 'require' };

// The package is ESM-typed but ships a CommonJS build for Node's require (what tsc and esbuild emit here).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: typeof TokenizerType };

/**
 * The model's Hugging Face tokenizer.json. Encoding adds no special tokens (the prompt template writes them as
 * text); decoding skips special tokens and silently drops ids the tokenizer does not know (the diffusion MASK is an
 * embedding row, not a token), as the reference's fast tokenizer does.
 */
export class TextTokenizer {
  private tok: TokenizerType;

  constructor(tokenizerJson: object, tokenizerConfig: object = {}) {
    this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
  }

  static fromFile(path: string): TextTokenizer {
    const configPath = join(dirname(path), 'tokenizer_config.json');
    const json = readJsonFile(path);
    const config = existsSync(configPath) ? readJsonFile(configPath) : {};
    try {
      return new TextTokenizer(json, config);
    } catch (err) {
      throw new DiffusionVLError('model', `${path}: not a tokenizer this build can read (${(err as Error).message})`);
    }
  }

  encode(text: string): number[] {
    if (text === '') return [];
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) if (this.tok.id_to_token(ids[i]) !== undefined) known.push(ids[i]);
    // The library throws on an empty list.
    if (known.length === 0) return '';
    return this.tok.decode(known, { skip_special_tokens: true });
  }

  /**
   * Decodes a block with masked positions rendered as `maskText`: runs of known ids are decoded together so that
   * multi-byte characters split over tokens still come out whole.
   */
  decodeWithMasks(ids: ArrayLike<number>, maskId: number, maskText: string): string {
    let out = '';
    let run: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === maskId) {
        out += this.decode(run) + maskText;
        run = [];
      } else run.push(ids[i]);
    }
    return out + this.decode(run);
  }
}

/** A model file's JSON, or a `model` error naming the file (a truncated or damaged download or copy). */
function readJsonFile(path: string): object {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as object;
  } catch (err) {
    throw new DiffusionVLError('model', `${path}: cannot be read as JSON, the file is truncated or damaged (${(err as Error).message})`);
  }
}
