import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkGgufDecoder } from '../../../server/engine/backends/llamacpp/ggufCheck';
import { expectRefusal, Finding, invariant, type FuzzTarget } from '../target';
import { scratchDir } from './scratch';

/** The decoder dimensions of the seed files (test/fuzz/corpus/gguf/), as a model folder's manifest states them. */
const TEXT = { vocabSize: 16, hiddenSize: 32, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 1 };

/**
 * Input: a model folder's GGUF decoder, checked as the engine checks it before llama.cpp may load it (llama.cpp
 * aborts the process on some malformed headers). Refused: a `model` error naming the file. Accepted: every tensor's
 * data lies inside the file, on the alignment, and the dimensions are the manifest's.
 */
let dir = '';
export const target: FuzzTarget = {
  maxLength: 64 * 1024,
  dictionary: [
    'GGUF', '\x03\x00\x00\x00', '\x02\x00\x00\x00', 'general.alignment', 'general.architecture', 'qwen2', 'qwen2.block_count', 'qwen2.embedding_length',
    'qwen2.attention.head_count', 'qwen2.attention.head_count_kv', 'qwen2.feed_forward_length', 'qwen2.vocab_size', 'token_embd.weight',
    'tokenizer.ggml.tokens', '\xff\xff\xff\xff\xff\xff\xff\xff', '\x00\x00\x00\x00\x00\x00\x00\x80', '\x09\x00\x00\x00', '\x08\x00\x00\x00',
  ],
  setup() {
    dir = scratchDir('gguf');
    return Promise.resolve();
  },
  fuzz(data) {
    const file = join(dir, 'decoder.gguf');
    writeFileSync(file, data);
    let h;
    try {
      h = checkGgufDecoder(file, TEXT);
    } catch (err) {
      expectRefusal(err, { kinds: ['model'] });
      if (!(err as Error).message.startsWith(`${file}: `)) throw new Finding(`refusal does not name the file: ${(err as Error).message}`);
      return;
    }
    invariant(h.dataStart % h.alignment === 0 && h.dataStart <= h.fileSize, `data section at ${h.dataStart} of ${h.fileSize}`);
    for (const t of h.tensors) {
      invariant(t.offset % h.alignment === 0, `tensor ${t.name} at ${t.offset}, off the alignment ${h.alignment}`);
      invariant(Number.isSafeInteger(t.bytes) && h.dataStart + t.offset + t.bytes <= h.fileSize, `tensor ${t.name} ends past the file`);
      invariant(t.ne.length >= 1 && t.ne.length <= 4 && t.ne.every((d) => Number.isSafeInteger(d) && d > 0), `tensor ${t.name} dims ${t.ne.join('×')}`);
    }
    invariant(h.meta.get('qwen2.block_count') === TEXT.numLayers, 'layer count');
  },
};
