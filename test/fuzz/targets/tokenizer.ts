import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextTokenizer } from '../../../server/engine/tokenizer';
import { expectRefusal, invariant, type FuzzTarget } from '../target';
import { scratchDir, splitParts } from './scratch';

/**
 * Input: tokenizer.json and tokenizer_config.json separated by a NUL byte, loaded as the engine loads a converted
 * model's tokenizer, then used as a question uses it: encode a prompt, decode ids (known, unknown, masked).
 */
let dir = '';
const PROMPT = '<|im_start|>user\nWhich bar is the tallest? 12 ünïcödé 🙂\n<|im_end|>';
export const target: FuzzTarget = {
  maxLength: 32 * 1024,
  dictionary: [
    '"model"', '"type"', '"BPE"', '"WordPiece"', '"Unigram"', '"WordLevel"', '"vocab"', '"merges"', '"added_tokens"', '"pre_tokenizer"',
    '"Split"', '"ByteLevel"', '"Sequence"', '"pretokenizers"', '"pattern"', '"Regex"', '"String"', '"normalizer"', '"NFC"', '"NFKC"',
    '"Lowercase"', '"Replace"', '"decoder"', '"post_processor"', '"TemplateProcessing"', '"byte_fallback"', '"unk_token"', '"special"',
    '"content"', '"id"', '(a+)+$', '\\\\p{L}+', 'null', '\u0000',
  ],
  setup() {
    dir = scratchDir('tokenizer');
    return Promise.resolve();
  },
  fuzz(data) {
    const [json, config] = splitParts(data, 2);
    const path = join(dir, 'tokenizer.json');
    writeFileSync(path, json ?? Buffer.alloc(0));
    if (config) writeFileSync(join(dir, 'tokenizer_config.json'), config);
    else rmSync(join(dir, 'tokenizer_config.json'), { force: true });
    try {
      const tok = TextTokenizer.fromFile(path);
      const ids = tok.encode(PROMPT);
      invariant(Array.isArray(ids) && ids.every((id) => Number.isInteger(id) && id >= 0), `encode gave ${JSON.stringify(ids).slice(0, 200)}`);
      const text = tok.decode([...ids, 10 ** 9, -1]);
      invariant(typeof text === 'string', 'decode gave no string');
      invariant(typeof tok.decodeWithMasks([...ids.slice(0, 4), 464, ...ids.slice(4)], 464, '░') === 'string', 'decodeWithMasks gave no string');
    } catch (err) {
      expectRefusal(err, { kinds: ['model'] });
    }
  },
};
