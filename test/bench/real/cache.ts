import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths';

/** Everything bench:real generates lives here (ignored by git); reruns reuse it. */
export const realBenchDir = join(repoRoot, '.cache', 'bench-real');

const hash = (s: string | Buffer) => createHash('sha256').update(s).digest('hex').slice(0, 12);

export function checkpointDir(label: string, opts: object): string {
  return join(realBenchDir, `ckpt-${label}-${hash(JSON.stringify(opts))}`);
}

/**
 * Key of the converter's code: any change to it (an int4 layout, a graph) converts again instead of timing a model
 * the current converter would not write.
 */
export function converterKey(): string {
  const dir = join(repoRoot, 'out', 'server', 'converter');
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.js')) h.update(e.name).update(readFileSync(join(d, e.name)));
    }
  };
  walk(dir);
  return h.digest('hex').slice(0, 12);
}

/** Writes the checkpoint once (into a temp folder renamed into place); returns its size on disk and write time. */
export async function ensureCheckpoint(dir: string, write: (dir: string) => Promise<unknown>): Promise<{ bytes: number; seconds: number | null }> {
  let seconds: number | null = null;
  if (!existsSync(join(dir, 'config.json'))) {
    const t0 = Date.now();
    await rm(`${dir}.tmp`, { recursive: true, force: true });
    await write(`${dir}.tmp`);
    await rename(`${dir}.tmp`, dir);
    seconds = (Date.now() - t0) / 1000;
  }
  let bytes = 0;
  for (const f of readdirSync(dir)) bytes += (await stat(join(dir, f))).size;
  return { bytes, seconds };
}
