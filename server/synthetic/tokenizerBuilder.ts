/**
 * Builds the synthetic model's tokenizer: a byte-level BPE in Hugging Face `tokenizer.json` form (the same
 * pre-tokenizer, normaliser and decoder as Qwen2.5's, so any text still encodes), with merges learned from the
 * generator's own prompts and answers. The vocabulary stays a few hundred tokens, which keeps the embedding table and
 * head tiny. The fixed chat-template system prompt is one added token: the engine writes it into every prompt, and
 * one position is cheaper to train and run than fifteen.
 */

export const ENDOFTEXT = '<|endoftext|>';
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';

/** Qwen2.5's split pattern (the JSON form uses Rust's (?i:…) group, which JS regexes lack; same language otherwise). */
const SPLIT_PATTERN_JSON = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SPLIT_PATTERN_JS = /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** GPT-2's reversible byte → printable character map used by ByteLevel. */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return out;
}

export interface TokenizerBuild {
  json: Record<string, unknown>;
  /** Ids of the added tokens. */
  special: { endoftext: number; imStart: number; imEnd: number; systemPrompt: number };
  /** Number of ids the tokenizer knows (the MASK embedding row goes right after). */
  size: number;
}

function splitOnAdded(text: string, added: string[]): string[] {
  let parts = [text];
  for (const tok of added) parts = parts.flatMap((p) => p.split(tok));
  return parts.filter((p) => p !== '');
}

/**
 * Learns `maxMerges` BPE merges from `texts` (pair counts weighted by word frequency; ties broken by the pair's
 * string order, so the result is deterministic) and returns the tokenizer.json object.
 */
export function buildTokenizer(texts: string[], systemPrompt: string, maxMerges: number): TokenizerBuild {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const addedStrings = [ENDOFTEXT, IM_START, IM_END, systemPrompt];
  const wordFreq = new Map<string, number>();
  for (const text of texts) {
    for (const piece of splitOnAdded(text.normalize('NFC'), addedStrings)) {
      for (const m of piece.matchAll(SPLIT_PATTERN_JS)) {
        const w = Array.from(enc.encode(m[0]), (b) => b2u[b]).join('');
        wordFreq.set(w, (wordFreq.get(w) ?? 0) + 1);
      }
    }
  }
  const words = [...wordFreq.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([w, n]) => ({ syms: [...w], n }));
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const key = `${w.syms[i]}\u0000${w.syms[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + w.n);
      }
    }
    let best: string | undefined;
    let bestN = 1;
    for (const [k, n] of counts) if (n > bestN || (n === bestN && best !== undefined && k < best)) [best, bestN] = [k, n];
    if (best === undefined) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.syms[i]);
      }
      w.syms = out;
    }
  }
  const vocab: Record<string, number> = {};
  b2u.forEach((ch, i) => (vocab[ch] = i));
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length;
  const added = addedStrings.map((content, i) => ({
    id: base + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: content !== systemPrompt,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: SPLIT_PATTERN_JSON }, behavior: 'Isolated', invert: false }, byteLevel],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return {
    json,
    special: { endoftext: base, imStart: base + 1, imEnd: base + 2, systemPrompt: base + 3 },
    size: base + addedStrings.length,
  };
}
