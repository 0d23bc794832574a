import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { diskFilledWhileWriting, isNoSpace } from '../engine/diskFilled';

/**
 * Writes a model folder into `<out>.partial` and renames it into place at the end, so a failed or interrupted
 * conversion never leaves a half-written model where the engine would load it. A disk that fills up is a `diskFull`
 * error that says so, whoever converts (the CLI, the sidecar's worker).
 */
export async function writeFolderAtomically<T>(outDir: string, write: (dir: string) => Promise<T>): Promise<T> {
  const out = resolve(outDir);
  const tmp = `${out}.partial`;
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const result = await write(tmp);
    await rm(out, { recursive: true, force: true });
    await mkdir(dirname(out), { recursive: true });
    await rename(tmp, out);
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw isNoSpace(err) ? diskFilledWhileWriting(tmp, 'conversion') : err;
  }
}
