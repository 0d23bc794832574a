import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { openCheckpoint } from '../../server/converter/checkpoint';
import { writeQwen2Gguf } from '../../server/converter/gguf/qwen2Gguf';
import { openSiglipCheckpoint } from '../../server/converter/siglipCheckpoint';
import { cacheDir } from './paths';
import { ensureTinySiglipCheckpoint } from './tinySiglipModel';
import { ensureTinyCheckpoint } from './tinyModel';

/**
 * An F32 GGUF of a golden tiny checkpoint's text decoder and head, written by the converter's GGUF writer (no
 * vocabulary: the engine tokenizes), cached beside the checkpoint it came from.
 */
export async function ensureTinyGguf(kind: 'qwenvl' | 'siglip'): Promise<string> {
  const dir = kind === 'qwenvl' ? await ensureTinyCheckpoint() : await ensureTinySiglipCheckpoint();
  const out = join(cacheDir, `${basename(dir)}.f32.gguf`);
  if (existsSync(out)) return out;
  const ckpt = kind === 'qwenvl' ? await openCheckpoint(dir) : await openSiglipCheckpoint(dir);
  try {
    const tmp = `${out}.${process.pid}.tmp`;
    await writeQwen2Gguf(ckpt, tmp, { type: 'fp32', name: basename(dir), text: ckpt.config.text, tokens: ckpt.config.tokens });
    await rename(tmp, out);
  } finally {
    await ckpt.close();
  }
  return out;
}
