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

  /** `label` names the file in errors: a tokenizer the library cannot build or run is a broken model, not a bug. */
  constructor(tokenizerJson: object, tokenizerConfig: object = {}, private readonly label = 'tokenizer.json') {
    checkIds(tokenizerJson, label);
    this.tok = this.guard('cannot be loaded', () => new Tokenizer(tokenizerJson, tokenizerConfig));
  }

  static fromFile(path: string): TextTokenizer {
    const json = readJsonObject(path);
    const configPath = join(dirname(path), 'tokenizer_config.json');
    const config = existsSync(configPath) ? readJsonObject(configPath) : {};
    return new TextTokenizer(json, config, path);
  }

  encode(text: string): number[] {
    if (text === '') return [];
    const ids = this.guard('cannot encode the prompt', () => this.tok.encode(text, { add_special_tokens: false }).ids);
    const bad = ids.find((id: number) => !isId(id));
    if (bad !== undefined) throw new DiffusionVLError('model', `${this.label}: encoding gave the id ${bad}, which is not a token id`);
    return ids;
  }

  decode(ids: ArrayLike<number>): string {
    const known: number[] = [];
    this.guard('cannot decode the answer', () => {
      for (let i = 0; i < ids.length; i++) if (this.tok.id_to_token(ids[i]) !== undefined) known.push(ids[i]);
    });
    // The library throws on an empty list.
    if (known.length === 0) return '';
    return this.guard('cannot decode the answer', () => this.tok.decode(known, { skip_special_tokens: true }));
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

  private guard<T>(what: string, run: () => T): T {
    try {
      return run();
    } catch (err) {
      if (err instanceof DiffusionVLError) throw err;
      throw new DiffusionVLError('model', `${this.label}: ${what} (${err instanceof Error ? err.message : String(err)})`);
    }
  }
}

/** A JSON object from a model file, or a model error naming the file. */
function readJsonObject(path: string): object {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new DiffusionVLError('model', `${path}: cannot be read as JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new DiffusionVLError('model', `${path}: not a JSON object`);
  return v;
}

function isId(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Token ids are embedding rows: the vocabulary and the added tokens must map to non-negative integers. */
function checkIds(json: object, label: string): void {
  const j = json as { model?: { vocab?: unknown }; added_tokens?: unknown };
  const vocab = j.model?.vocab;
  if (vocab !== null && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab)) {
      if (!isId(id)) throw new DiffusionVLError('model', `${label}: the vocabulary maps ${JSON.stringify(token)} to ${JSON.stringify(id)}, which is not a token id`);
    }
  }
  if (Array.isArray(j.added_tokens)) {
    for (const t of j.added_tokens as { id?: unknown; content?: unknown }[]) {
      if (!isId(t?.id)) throw new DiffusionVLError('model', `${label}: added token ${JSON.stringify(t?.content)} has id ${JSON.stringify(t?.id)}, which is not a token id`);
    }
  }
}

