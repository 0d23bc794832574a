/**
 * SigLIP checkpoint layouts the official loader accepts (single file, sharded BF16, tower weights only in the tower
 * folder), config validated against the weights with clear errors, and fp16 / int4 conversions that run.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { convertCheckpoint } from '../server/converter/convert';
import { openSiglipCheckpoint } from '../server/converter/siglipCheckpoint';
import { createEngine } from '../server/engine/engine';
import { readManifest } from '../server/engine/manifest';
import { rejects } from './helpers/assertRejects';
import { fixturesDir } from './helpers/paths';
import { SIGLIP_GOLDEN_DIMS, writeSiglipCheckpoint, type SiglipTinyOptions } from './helpers/checkpoint/tinySiglipCheckpoint';
import { ensureTinySiglipModel } from './helpers/tinySiglipModel';

const work = mkdtemp(join(tmpdir(), 'dvl-siglip-'));
after(async () => rm(await work, { recursive: true, force: true }));
let n = 0;
async function make(opts: SiglipTinyOptions = {}): Promise<string> {
  const dir = join(await work, `ckpt-${n++}`);
  await writeSiglipCheckpoint(dir, { fill: 'cheap', towerFolder: true, ...opts });
  return dir;
}
async function editJson(path: string, edit: (j: Record<string, unknown>) => void): Promise<void> {
  const j = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  edit(j);
  await writeFile(path, JSON.stringify(j));
}

describe('SigLIP checkpoint layouts', () => {
  it('reads the release layout: tower from the checkpoint, its config from the tower folder, hub layers − 1 run', async () => {
    const ck = await openSiglipCheckpoint(await make());
    try {
      assert.equal(ck.towerWeights, 'checkpoint');
      assert.equal(ck.config.hubLayers, 3);
      assert.equal(ck.config.vision.numLayers, 2);
      assert.equal(ck.config.vision.numHeads, 2);
      assert.equal(ck.config.anyres.aspectRatio, 'anyres_max_4');
      assert.equal(ck.config.anyres.gridPinpoints.length, 36);
      assert.equal(ck.config.tokens.mask, 151671);
      assert.ok(!ck.tensors.has('siglip.encoder.layers.2.mlp.fc1.weight'));
    } finally {
      await ck.close();
    }
  });

  it('converts a sharded BF16 checkpoint, and one whose tower weights live only in the tower folder', async () => {
    for (const opts of [{ dtype: 'BF16', shards: 3 }, { towerOutside: true }] as SiglipTinyOptions[]) {
      const dir = await make(opts);
      const out = join(await work, `model-${n++}`);
      const m = await convertCheckpoint(dir, out, { precision: 'fp32' });
      assert.equal(m.architecture, 'diffusionvl_qwen');
      const engine = await createEngine({ modelDir: out, provider: 'cpu', threads: 1 });
      try {
        const r = await engine.generateIds({ promptIds: [151644, 872, 198, -200, 198, 151645], images: [{ path: join(fixturesDir, 'golden-siglip', 'images', 'img3_tiny_20x15.png') }], options: { maxNewTokens: 8, steps: 2 } });
        assert.equal(r.outputIds.length, 8);
      } finally {
        await engine.dispose();
      }
    }
  });

  it('accepts the "(1x1),...,(6x6)" string form of image_grid_pinpoints', async () => {
    const dir = await make();
    await editJson(join(dir, 'config.json'), (j) => (j.image_grid_pinpoints = '(1x1),...,(6x6)'));
    const ck = await openSiglipCheckpoint(dir);
    assert.deepEqual(ck.config.anyres.gridPinpoints.slice(0, 3), [[384, 384], [384, 768], [384, 1152]]);
    await ck.close();
  });
});

describe('SigLIP config validated against the weights', () => {
  const cases: { label: string; opts?: SiglipTinyOptions; edit: (dir: string) => Promise<void>; parts: (string | RegExp)[] }[] = [
    {
      label: 'an unknown tower id and no tower folder',
      edit: (d) => editJson(join(d, 'config.json'), (j) => (j.mm_vision_tower = 'someone/siglip-custom')),
      parts: ['someone/siglip-custom', '--vision-tower'],
    },
    {
      label: 'mm_use_im_patch_token missing (the official loader would resize the vocabulary)',
      edit: (d) => editJson(join(d, 'config.json'), (j) => delete j.mm_use_im_patch_token),
      parts: ['mm_use_im_patch_token', '151671'],
    },
    {
      label: 'another projector type',
      edit: (d) => editJson(join(d, 'config.json'), (j) => (j.mm_projector_type = 'linear')),
      parts: ['mm_projector_type', 'linear', 'mlp2x_gelu'],
    },
    {
      label: 'tower config with more layers than stored',
      edit: (d) => editJson(join(d, 'siglip-tower', 'config.json'), (j) => ((j.vision_config as Record<string, unknown>).num_hidden_layers = 5)),
      parts: ['num_hidden_layers=5', '4 layers run', 'stores 2'],
    },
    {
      label: 'tower width not matching the weights',
      edit: async (d) => {
        await editJson(join(d, 'siglip-tower', 'config.json'), (j) => ((j.vision_config as Record<string, unknown>).hidden_size = 48));
        await editJson(join(d, 'config.json'), (j) => (j.mm_hidden_size = 48));
      },
      parts: ['patch_embedding.weight', 'vision hidden_size=48'],
    },
    {
      label: 'a vocabulary without the MASK id',
      opts: { dims: { ...SIGLIP_GOLDEN_DIMS, vocab: 1000 } },
      edit: async () => {},
      parts: ['151671', 'vocab_size 1000'],
    },
    {
      label: 'an unsupported aspect ratio',
      edit: (d) => editJson(join(d, 'config.json'), (j) => (j.image_aspect_ratio = 'anyres')),
      parts: ['image_aspect_ratio', 'anyres_max_N'],
    },
  ];
  for (const c of cases) {
    it(`rejects: ${c.label}`, async () => {
      const dir = await make(c.opts);
      await c.edit(dir);
      await rejects(openSiglipCheckpoint(dir), ...c.parts);
    });
  }
});

describe('SigLIP reduced precisions', () => {
  it('fp16 and int4 conversions load and generate', async () => {
    for (const precision of ['fp16', 'int4'] as const) {
      const dir = await ensureTinySiglipModel(precision);
      assert.equal(readManifest(dir).precision, precision);
      const engine = await createEngine({ modelDir: dir, provider: 'cpu', threads: 1 });
      try {
        const r = await engine.generateIds({ promptIds: [151644, 872, 198, -200, 198, 151645], images: [{ path: join(fixturesDir, 'golden-siglip', 'images', 'img1_banner_1000x200.png') }], options: { maxNewTokens: 16, steps: 4 } });
        assert.equal(r.outputIds.length, 16);
        assert.ok(r.outputIds.every((id) => Number.isInteger(id) && id >= 0 && id < 152064));
      } finally {
        await engine.dispose();
      }
    }
  });
});
