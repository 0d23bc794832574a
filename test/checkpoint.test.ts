import { strict as assert } from 'node:assert';
import { mkdtemp, open, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectedTensors, openCheckpoint } from '../server/converter/checkpoint';
import { f32ToBf16Bits, f32ToF16Bits } from '../server/engine/half';
import { readSafetensorsHeader, readTensorBytes, type SafetensorsDtype } from '../server/converter/safetensors';
import { tinyTensorValues, writeTinyCheckpoint, type TinyCheckpointOptions } from './helpers/checkpoint/tinyCheckpoint';
import { rejects } from './helpers/assertRejects';

/** Small enough that each variant is a few hundred KB. */
const SMALL: TinyCheckpointOptions = {
  text: { vocabSize: 300, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2 },
  vision: { depth: 2, hiddenSize: 16, numHeads: 2, intermediateSize: 24, fullAttentionBlocks: [1] },
  seed: 7,
};

let root: string;
let counter = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dvl-checkpoint-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function make(opts: TinyCheckpointOptions = {}): Promise<string> {
  const dir = join(root, `ckpt-${counter++}`);
  await writeTinyCheckpoint(dir, { ...SMALL, ...opts });
  return dir;
}

/** float32 values as they come back from a file of `dtype` (narrowed with round-to-nearest-even, widened exactly). */
function asStored(values: Float32Array, dtype: SafetensorsDtype): Float32Array {
  if (dtype === 'F32') return values;
  const out = new Float32Array(values.length);
  const bits = new Uint32Array(out.buffer);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'BF16') {
      bits[i] = f32ToBf16Bits(values[i]) << 16;
    } else {
      const h = f32ToF16Bits(values[i]);
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const mag = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
      f[0] = h & 0x8000 ? -mag : mag;
      bits[i] = u[0];
    }
  }
  return out;
}

async function editJson(path: string, edit: (j: Record<string, unknown>) => void): Promise<void> {
  const j = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  edit(j);
  await writeFile(path, JSON.stringify(j, null, 2));
}

/** Sets a text field wherever the release config carries it (text_config and the top-level copy). */
async function editTextField(dir: string, key: string, value: unknown): Promise<void> {
  await editJson(join(dir, 'config.json'), (j) => {
    if (value === undefined) delete j[key];
    else j[key] = value;
    const tc = j.text_config as Record<string, unknown>;
    if (value === undefined) delete tc[key];
    else tc[key] = value;
  });
}

interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Re-writes a safetensors file after editing its tensor list (shapes, dtypes, removals). */
async function rewrite(path: string, edit: (ts: RawTensor[]) => RawTensor[]): Promise<void> {
  const h = await readSafetensorsHeader(path);
  const fh = await open(path, 'r');
  const ts: RawTensor[] = [];
  try {
    for (const t of h.tensors) ts.push({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: await readTensorBytes(fh, t) });
  } finally {
    await fh.close();
  }
  const header: Record<string, unknown> = {};
  let off = 0;
  const edited = edit(ts);
  for (const t of edited) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeFile(path, Buffer.concat([len, json, ...edited.map((t) => t.bytes)]));
}

describe('openCheckpoint: layouts and dtypes', () => {
  const variants: { label: string; opts: TinyCheckpointOptions; layout: { model: string[]; vision: string[]; projector: string[] } }[] = [
    {
      label: 'release layout, F32, untied',
      opts: {},
      layout: { model: ['model.safetensors'], vision: ['vision_tower.safetensors'], projector: ['projector.safetensors'] },
    },
    {
      label: 'everything in 3 BF16 shards, tied',
      opts: { visionLayout: 'inside', projectorLayout: 'inside', shards: 3, dtype: 'BF16', tied: true },
      layout: {
        model: ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'],
        vision: ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'],
        projector: ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'],
      },
    },
    {
      label: 'F16, 2 shards, visual.-prefixed tower file, merger.-prefixed projector file',
      opts: { shards: 2, dtype: 'F16', visionFilePrefix: 'visual.', projectorMergerPrefix: true },
      layout: {
        model: ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
        vision: ['vision_tower.safetensors'],
        projector: ['projector.safetensors'],
      },
    },
    {
      label: 'F16, tower inside, flat config without vision_config.json',
      opts: { dtype: 'F16', visionLayout: 'inside', configStyle: 'flat', visionConfigFile: false },
      layout: { model: ['model.safetensors'], vision: ['model.safetensors'], projector: ['projector.safetensors'] },
    },
    {
      label: 'BF16, full-prefix tower file, projector inside',
      opts: { dtype: 'BF16', visionFilePrefix: 'model.vision_tower.vision_tower.', projectorLayout: 'inside' },
      layout: { model: ['model.safetensors'], vision: ['vision_tower.safetensors'], projector: ['model.safetensors'] },
    },
  ];

  for (const v of variants) {
    it(`reads every tensor: ${v.label}`, async () => {
      const dir = await make(v.opts);
      const ckpt = await openCheckpoint(dir);
      try {
        assert.deepEqual(ckpt.layout, v.layout);
        const opts = { ...SMALL, ...v.opts };
        assert.equal(ckpt.config.text.tieWordEmbeddings, !!v.opts.tied);
        assert.equal(ckpt.config.text.hiddenSize, 32);
        assert.equal(ckpt.config.vision.hiddenSize, 16);
        const names = expectedTensors(ckpt.config).map((e) => e.name);
        assert.equal(names.length, 1 + 2 * 12 + 2 + 1 + 2 * 12 + 5);
        for (const name of names) {
          const source = name === 'lm_head.weight' && v.opts.tied ? 'model.embed_tokens.weight' : name;
          const want = asStored(tinyTensorValues(opts, source), v.opts.dtype ?? 'F32');
          const got = await ckpt.readF32(name, ckpt.info(name).shape);
          assert.deepEqual(got, want, name);
        }
        if (v.opts.tied) assert.equal(ckpt.info('lm_head.weight'), ckpt.info('model.embed_tokens.weight'));
        const fileNames = ckpt.files.map((f) => f.name);
        for (const f of [...v.layout.model, ...v.layout.vision, ...v.layout.projector, 'config.json']) assert.ok(fileNames.includes(f), f);
        if ((v.opts.shards ?? 1) > 1) assert.ok(fileNames.includes('model.safetensors.index.json'));
        assert.ok(ckpt.files.every((f) => f.bytes > 0 && f.path.startsWith(dir)));
      } finally {
        await ckpt.close();
      }
    });
  }

  it('reads the reference-sized config fields and verifies an expected shape on read', async () => {
    const dir = await make();
    const ckpt = await openCheckpoint(dir);
    try {
      const c = ckpt.config;
      assert.equal(c.text.rmsNormEps, 1e-6);
      assert.equal(c.text.ropeTheta, 1e6);
      assert.equal(c.text.headDim, 8);
      assert.deepEqual(c.text.mropeSection, [1, 1, 2]);
      assert.deepEqual(c.bd3lm, { enabled: true, blockSize: 8 });
      assert.deepEqual(c.pixels, { minPixels: 147456, maxPixels: 262144 });
      assert.deepEqual(c.vision.fullAttentionBlocks, [1]);
      assert.equal(c.vision.outHiddenSize, 32);
      assert.deepEqual(c.warnings, []);
      await rejects(ckpt.readF32('model.norm.weight', [33]), 'model.safetensors', 'model.norm.weight', '[32]', '[33]');
      await rejects(ckpt.readF32('vision.blocks.9.norm1.weight'), 'vision.blocks.9.norm1.weight', 'vision_tower.safetensors');
      assert.equal(ckpt.has('projector.ln_q.weight'), true);
      assert.equal(ckpt.has('merger.ln_q.weight'), false);
    } finally {
      await ckpt.close();
    }
  });
});

describe('openCheckpoint: weights that contradict the config', () => {
  it('names the file and tensor when a tensor is missing', async () => {
    const dir = await make();
    await rewrite(join(dir, 'model.safetensors'), (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.down_proj.weight'));
    await rejects(openCheckpoint(dir), 'model.layers.1.mlp.down_proj.weight', 'model.safetensors', /not found/);
  });

  it('names the file, tensor, both shapes and the config field on a wrong shape', async () => {
    const dir = await make();
    await rewrite(join(dir, 'model.safetensors'), (ts) =>
      ts.map((t) => (t.name === 'model.layers.1.mlp.up_proj.weight' ? { ...t, shape: [40, 32], bytes: new Uint8Array(40 * 32 * 4) } : t)),
    );
    await rejects(
      openCheckpoint(dir),
      'model.safetensors: tensor model.layers.1.mlp.up_proj.weight has shape [40,32], config expects [48,32] (intermediate_size=48)',
    );
  });

  it('reports a config whose dims contradict the weights', async () => {
    const dir = await make();
    await editTextField(dir, 'intermediate_size', 96);
    await rejects(
      openCheckpoint(dir),
      'model.safetensors: tensor model.layers.0.mlp.gate_proj.weight has shape [48,32], config expects [96,32] (intermediate_size=96)',
    );
  });

  it('reports vision tensors with their stored and canonical names', async () => {
    const dir = await make({ visionFilePrefix: 'visual.' });
    await editJson(join(dir, 'vision_config.json'), (j) => {
      j.intermediate_size = 20;
    });
    await rejects(
      openCheckpoint(dir),
      'vision_tower.safetensors: tensor visual.blocks.0.mlp.gate_proj.weight (vision.blocks.0.mlp.gate_proj.weight) has shape [24,16]',
      'vision intermediate_size=20',
    );
  });

  it('reports an unsupported dtype naming the file and tensor', async () => {
    const dir = await make();
    await rewrite(join(dir, 'projector.safetensors'), (ts) =>
      ts.map((t) => (t.name === 'mlp.0.bias' ? { ...t, dtype: 'I8', bytes: new Uint8Array(t.bytes.length / 4) } : t)),
    );
    await rejects(openCheckpoint(dir), 'projector.safetensors', 'tensor mlp.0.bias (projector.mlp.0.bias)', 'I8', /only F32, F16 and BF16/);
  });

  it('requires lm_head.weight when the config says it is not tied', async () => {
    const dir = await make({ tied: true });
    await editTextField(dir, 'tie_word_embeddings', false);
    await rejects(openCheckpoint(dir), 'lm_head.weight', 'model.safetensors', /tie_word_embeddings is false/);
  });

  it('infers tying from the weights when no config states it', async () => {
    const dir = await make({ tied: true });
    await editTextField(dir, 'tie_word_embeddings', undefined);
    const ckpt = await openCheckpoint(dir);
    assert.equal(ckpt.config.text.tieWordEmbeddings, true);
    assert.ok(ckpt.config.defaulted.some((d) => d.startsWith('tie_word_embeddings')));
    await ckpt.close();
  });

  it('lets the weights decide when text_config and the top level disagree on tying', async () => {
    const dir = await make();
    await editJson(join(dir, 'config.json'), (j) => {
      (j.text_config as Record<string, unknown>).tie_word_embeddings = true; // a serialized class default
    });
    const ckpt = await openCheckpoint(dir);
    assert.equal(ckpt.config.text.tieWordEmbeddings, false);
    assert.ok(ckpt.config.warnings.some((w) => w.startsWith('tie_word_embeddings')));
    assert.notEqual(ckpt.info('lm_head.weight'), ckpt.info('model.embed_tokens.weight'));
    await ckpt.close();
  });

  it('names a truncated shard', async () => {
    const dir = await make({ shards: 3 });
    const shard = join(dir, 'model-00002-of-00003.safetensors');
    const h = await readSafetensorsHeader(shard);
    await truncate(shard, h.fileSize - 10);
    await rejects(openCheckpoint(dir), 'model-00002-of-00003.safetensors', /truncated/);
  });

  it('checks the shard index against the shards', async () => {
    const dir = await make({ shards: 2 });
    await editJson(join(dir, 'model.safetensors.index.json'), (j) => {
      (j.weight_map as Record<string, string>)['model.layers.9.mlp.up_proj.weight'] = 'model-00002-of-00002.safetensors';
    });
    await rejects(openCheckpoint(dir), 'model-00002-of-00002.safetensors: tensor model.layers.9.mlp.up_proj.weight', /missing from the shard/);
    await unlink(join(dir, 'model-00002-of-00002.safetensors'));
    await rejects(openCheckpoint(dir), 'model.safetensors.index.json', 'model-00002-of-00002.safetensors', /not in/);
  });

  it('rejects a folder without model weights', async () => {
    const dir = await make();
    await unlink(join(dir, 'model.safetensors'));
    await rejects(openCheckpoint(dir), /no model\.safetensors/);
  });
});

describe('openCheckpoint: config validation', () => {
  const cases: { label: string; edit: (dir: string) => Promise<void>; parts: (string | RegExp)[] }[] = [
    { label: 'missing field', edit: (d) => editTextField(d, 'hidden_size', undefined), parts: ['config.json', 'hidden_size', /missing/] },
    { label: 'missing rms_norm_eps (class default not trusted)', edit: (d) => editTextField(d, 'rms_norm_eps', undefined), parts: ['rms_norm_eps', /missing/] },
    { label: 'wrong type', edit: (d) => editTextField(d, 'num_hidden_layers', '2'), parts: ['config.json text_config: num_hidden_layers', /integer/] },
    { label: 'non-positive dim', edit: (d) => editTextField(d, 'vocab_size', 0), parts: ['vocab_size', /positive/] },
    { label: 'heads not dividing hidden', edit: (d) => editTextField(d, 'num_attention_heads', 5), parts: ['num_attention_heads=5', 'hidden_size=32'] },
    { label: 'kv heads not dividing heads', edit: (d) => editTextField(d, 'num_key_value_heads', 3), parts: ['num_key_value_heads=3', 'num_attention_heads=4'] },
    {
      label: 'unknown model_type',
      edit: (d) => editJson(join(d, 'config.json'), (j) => { j.model_type = 'llava_llama'; }),
      parts: ['config.json', 'llava_llama', 'diffusionvl_qwenvl'],
    },
    {
      label: 'unknown architecture',
      edit: (d) => editJson(join(d, 'config.json'), (j) => { j.architectures = ['LlamaForCausalLM']; }),
      parts: ['config.json', 'LlamaForCausalLM'],
    },
    {
      label: 'the SigLIP variant given to the QwenVL reader',
      edit: (d) => editJson(join(d, 'config.json'), (j) => { j.model_type = 'diffusionvl_qwen'; j.architectures = ['DiffusionVLQwenForCausalLM']; }),
      parts: ['diffusionvl_qwen', /SigLIP checkpoint reader/],
    },
    {
      label: 'missing vision field',
      edit: async (d) => {
        await editJson(join(d, 'vision_config.json'), (j) => { delete j.hidden_size; });
        await editJson(join(d, 'config.json'), (j) => { delete (j.vision_config as Record<string, unknown>).hidden_size; });
      },
      parts: ['vision_config.json', 'hidden_size', /missing/],
    },
    {
      label: 'no vision config at all',
      edit: async (d) => {
        await unlink(join(d, 'vision_config.json'));
        await editJson(join(d, 'config.json'), (j) => { delete j.vision_config; });
      },
      parts: ['config.json', 'vision_config'],
    },
    {
      label: 'projector output not matching the LLM',
      edit: (d) => editJson(join(d, 'vision_config.json'), (j) => { j.out_hidden_size = 48; }),
      parts: ['out_hidden_size=48', 'hidden_size=32'],
    },
    {
      label: 'config.json not JSON',
      edit: (d) => writeFile(join(d, 'config.json'), '{"model_type": '),
      parts: ['config.json', /not valid JSON/],
    },
  ];
  for (const c of cases) {
    it(`rejects: ${c.label}`, async () => {
      const dir = await make();
      await c.edit(dir);
      await rejects(openCheckpoint(dir), ...c.parts);
    });
  }

  it('fills gaps in text_config from the top level instead of class defaults', async () => {
    const dir = await make();
    await editJson(join(dir, 'config.json'), (j) => {
      delete (j.text_config as Record<string, unknown>).rms_norm_eps;
      j.rms_norm_eps = 1e-6;
    });
    const ckpt = await openCheckpoint(dir);
    assert.equal(ckpt.config.text.rmsNormEps, 1e-6);
    await ckpt.close();
  });
});
