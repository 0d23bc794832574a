import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sceneAt } from './generator';
import { renderPng } from './render';
import type { QA, SceneKind } from './scenes';

/** Seed of the example images in media/examples (split "eval": never trained on). */
export const EXAMPLES_SEED = 2025;

export interface Example {
  file: string;
  kind: SceneKind;
  caption: string;
  qas: QA[];
}

/** The first scenes of each kind for EXAMPLES_SEED, `perKind` of each. */
export function exampleScenes(perKind = 1): { name: string; index: number; kind: SceneKind }[] {
  const want: Record<SceneKind, number> = { shapes: perKind, text: perKind, arrow: perKind, chart: perKind };
  const out: { name: string; index: number; kind: SceneKind }[] = [];
  for (let i = 0; out.length < 4 * perKind; i++) {
    const kind = sceneAt(EXAMPLES_SEED, 'eval', i).kind;
    if (want[kind] > 0) {
      want[kind]--;
      out.push({ name: `${kind}-${perKind - want[kind]}`, index: i, kind });
    }
  }
  return out;
}

/** Writes the example PNGs and examples.json (every question each image answers). */
export async function writeExamples(dir: string, perKind = 2): Promise<Example[]> {
  mkdirSync(dir, { recursive: true });
  const examples: Example[] = [];
  for (const e of exampleScenes(perKind)) {
    const scene = sceneAt(EXAMPLES_SEED, 'eval', e.index);
    const file = `${e.name}.png`;
    writeFileSync(join(dir, file), await renderPng(scene.svg));
    examples.push({ file, kind: scene.kind, caption: scene.caption, qas: scene.qas });
  }
  writeFileSync(join(dir, 'examples.json'), JSON.stringify(examples, null, 2) + '\n');
  return examples;
}
