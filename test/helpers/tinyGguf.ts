import { basename, join } from 'node:path';
import { writeMinimalGguf } from './minimalGguf';
import { cacheDir } from './paths';
import { ensureTinySiglipCheckpoint } from './tinySiglipModel';
import { ensureTinyCheckpoint } from './tinyModel';

/** An F32 GGUF of a golden tiny checkpoint's text decoder and head, cached beside the checkpoint it came from. */
export async function ensureTinyGguf(kind: 'qwenvl' | 'siglip'): Promise<string> {
  const ckpt = kind === 'qwenvl' ? await ensureTinyCheckpoint() : await ensureTinySiglipCheckpoint();
  return writeMinimalGguf(ckpt, join(cacheDir, `${basename(ckpt)}.f32.gguf`));
}
