import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { convertCheckpoint } from '../../server/converter/convert';
import { writeGoldenTinyCheckpoint } from './checkpoint/tinyCheckpoint';
import type { Precision } from '../../server/engine/manifest';
import { cacheDir } from './paths';

/**
 * The golden tiny checkpoint, regenerated and converted, cached under .cache/test. Both steps are keyed by content:
 * the checkpoint by the generator/converter code, the converted model by the checkpoint's SHA-256 sums, that code
 * and the precision. Results are built in a private temporary folder and renamed into place, so several test
 * files (or processes) asking at once never see a half-written model.
 */
export async function ensureTinyModel(precision: Precision = 'fp32'): Promise<string> {
  let p = memo.get(precision);
  if (!p) {
    p = build(precision);
    memo.set(precision, p);
  }
  return p;
}

const memo = new Map<Precision, Promise<string>>();

/** The regenerated golden tiny checkpoint (safetensors), cached under .cache/test. */
export function ensureTinyCheckpoint(): Promise<string> {
  ckptMemo ??= cached(join(cacheDir, `tiny-ckpt-${codeHash().slice(0, 16)}`), 'SHA256SUMS', (dir) => writeGoldenTinyCheckpoint(dir));
  return ckptMemo;
}

let ckptMemo: Promise<string> | undefined;

async function build(precision: Precision): Promise<string> {
  const code = codeHash();
  const ckpt = await ensureTinyCheckpoint();
  const sums = await readFile(join(ckpt, 'SHA256SUMS'));
  const key = createHash('sha256').update(sums).update(code).update(precision).digest('hex').slice(0, 16);
  return cached(join(cacheDir, `tiny-model-${precision}-${key}`), 'manifest.json', async (dir) => {
    await convertCheckpoint(ckpt, dir, { precision });
  });
}

/** Returns `dir`, building it with `make` unless it already holds `marker`. */
async function cached(dir: string, marker: string, make: (dir: string) => Promise<unknown>): Promise<string> {
  if (existsSync(join(dir, marker))) return dir;
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await make(tmp);
    await rename(tmp, dir).catch((err: NodeJS.ErrnoException) => {
      // Someone else finished first: theirs is as good as ours.
      if (!existsSync(join(dir, marker))) throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** Hash of the compiled converter, the checkpoint generator (test/helpers/checkpoint/) and the manifest types the
 * converter writes. */
function codeHash(): string {
  const h = createHash('sha256');
  const out = join(__dirname, '..', '..');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.js')) files.push(p);
    }
  };
  walk(join(out, 'server', 'converter'));
  walk(join(__dirname, 'checkpoint'));
  files.push(join(out, 'server', 'engine', 'manifest.js'));
  for (const f of files) h.update(f.slice(out.length)).update(readFileSync(f));
  return h.digest('hex');
}
