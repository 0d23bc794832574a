import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { MANIFEST_FILE } from './manifest';

/** The project root: the nearest folder above this file (dist/, or out/server/engine/) that has a package.json. */
function projectRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return resolve(__dirname, '..');
    dir = up;
  }
  return dir;
}

/**
 * The small model embedded in the project (`models/default`): what `diffusionvl ask` and `diffusionvl serve` use when
 * no model folder is configured.
 */
export function defaultModelDir(): string {
  return join(projectRoot(), 'models', 'default');
}

/** Whether `dir` holds a converted model (its manifest). */
export function isModelDir(dir: string): boolean {
  return existsSync(join(dir, MANIFEST_FILE));
}
