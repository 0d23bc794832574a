import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { convertCheckpoint } from '../../server/converter/convert';
import { writeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/checkpoint/tinyCheckpoint';
import type { Precision } from '../../server/engine/manifest';
import { repoRoot } from '../helpers/paths';

/**
 * A tiny-architecture model large enough for timings to mean something (hidden 256, 6 layers, head dim 64, an 8-layer
 * vision tower; the real vocabulary so the special ids exist), cheap-filled, converted once per precision and cached.
 */
export const BENCH_CHECKPOINT: TinyCheckpointOptions = {
  text: { hiddenSize: 256, intermediateSize: 1024, numLayers: 6, numHeads: 4, numKvHeads: 2 },
  // A vision tower with some weight, so that caching an image's features is measured against real work.
  vision: { hiddenSize: 128, depth: 8, numHeads: 2, intermediateSize: 512, fullAttentionBlocks: [3, 7] },
  fill: 'cheap',
};

const benchDir = join(repoRoot, '.cache', 'bench');

export async function ensureBenchModel(precision: Precision): Promise<string> {
  const key = createHash('sha256').update(JSON.stringify(BENCH_CHECKPOINT)).digest('hex').slice(0, 12);
  const ckpt = join(benchDir, `ckpt-${key}`);
  if (!existsSync(join(ckpt, 'config.json'))) {
    await rm(`${ckpt}.tmp`, { recursive: true, force: true });
    await writeTinyCheckpoint(`${ckpt}.tmp`, BENCH_CHECKPOINT);
    await rename(`${ckpt}.tmp`, ckpt);
  }
  const out = join(benchDir, `model-${key}-${precision}`);
  if (!existsSync(join(out, 'manifest.json'))) {
    await mkdir(benchDir, { recursive: true });
    await convertCheckpoint(ckpt, out, { precision });
  }
  return out;
}
