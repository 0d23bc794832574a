import { strict as assert } from 'node:assert';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../server/converter/checkpoint';
import { LegacyRandomState } from './helpers/checkpoint/mt19937';
import { pyFloat, pyFloatRepr, pyJsonDumps } from './helpers/checkpoint/pyJson';
import { sha256File } from '../server/converter/fileHash';
import { tensorSeed, tinyTensorValues, writeGoldenTinyCheckpoint } from './helpers/checkpoint/tinyCheckpoint';
import { goldenDir } from './helpers/paths';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dvl-tiny-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('NumPy legacy RandomState port', () => {
  it('matches MT19937 and NumPy reference values', () => {
    assert.equal(new LegacyRandomState(5489).nextUint32(), 3499211612); // the MT19937 reference first output
    const r = new LegacyRandomState(0);
    assert.equal(r.randomSample(), 0.5488135039273248); // np.random.RandomState(0).random_sample()
    assert.equal(r.randomSample(), 0.7151893663724195);
    const g = new LegacyRandomState(0).standardNormal(3); // np.random.RandomState(0).standard_normal(3)
    assert.deepEqual([...g], [1.764052345967664, 0.4001572083672233, 0.9787379841057392]);
  });

  it('derives per-tensor seeds from sha256("seed:name")', () => {
    const a = tensorSeed(15, 'model.embed_tokens.weight');
    assert.ok(Number.isInteger(a) && a >= 0 && a < 2 ** 32);
    assert.notEqual(a, tensorSeed(16, 'model.embed_tokens.weight'));
  });
});

describe('Python-compatible JSON', () => {
  it('writes floats as repr does', () => {
    const cases: [number, string][] = [
      [1e-6, '1e-06'], [1e6, '1000000.0'], [0.02, '0.02'], [0, '0.0'], [1e16, '1e+16'],
      [1234567890123456, '1234567890123456.0'], [0.0001, '0.0001'], [1e-5, '1e-05'], [-2.5, '-2.5'],
      [0.48145466, '0.48145466'], [1.5e-7, '1.5e-07'], [5e-324, '5e-324'], [1.7976931348623157e308, '1.7976931348623157e+308'],
    ];
    for (const [v, s] of cases) assert.equal(pyFloatRepr(v), s);
  });

  it('matches json.dumps(indent=2, sort_keys=True) and the compact form', () => {
    const obj = { b: [1, pyFloat(2.5), {}], a: { z: null, y: true, é: 'x"\n\x7f' }, c: [], d: pyFloat(1e-6) };
    assert.equal(
      pyJsonDumps(obj, 2),
      '{\n  "a": {\n    "y": true,\n    "z": null,\n    "\\u00e9": "x\\"\\n\\u007f"\n  },\n  "b": [\n    1,\n    2.5,\n    {}\n  ],\n  "c": [],\n  "d": 1e-06\n}',
    );
    assert.equal(
      pyJsonDumps({ w: { shape: [2, 3], dtype: 'F32', data_offsets: [0, 24] }, __metadata__: { format: 'pt' } }),
      '{"__metadata__":{"format":"pt"},"w":{"data_offsets":[0,24],"dtype":"F32","shape":[2,3]}}',
    );
  });
});

describe('golden tiny checkpoint generator', () => {
  it('reproduces the reference checkpoint byte for byte', async () => {
    const out = join(dir, 'tiny-diffusionvl-qwenvl');
    const t0 = performance.now();
    const files = await writeGoldenTinyCheckpoint(out);
    const ms = performance.now() - t0;
    const expected = (await readFile(join(goldenDir, 'tiny-checkpoint.SHA256SUMS'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/) as [string, string]);
    assert.deepEqual(files.filter((f) => f !== 'SHA256SUMS').sort(), expected.map(([, n]) => n).sort());
    for (const [sum, name] of expected) assert.equal(await sha256File(join(out, name)), sum, `${name} differs from the reference`);
    assert.equal(await readFile(join(out, 'SHA256SUMS'), 'utf8'), await readFile(join(goldenDir, 'tiny-checkpoint.SHA256SUMS'), 'utf8'));
    console.log(`golden tiny checkpoint written and hashed in ${(ms / 1000).toFixed(2)} s`);

    // The reader sees exactly the recipe's values.
    const ckpt = await openCheckpoint(out);
    try {
      for (const name of ['vision.blocks.1.attn.qkv.weight', 'model.layers.1.input_layernorm.weight', 'projector.mlp.2.weight']) {
        assert.deepEqual(await ckpt.readF32(name), tinyTensorValues({}, name), name);
      }
    } finally {
      await ckpt.close();
    }
  });
});
