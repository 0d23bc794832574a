import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { openCheckpoint } from '../server/converter/checkpoint';
import { DiffusionVLError } from '../server/engine/errors';
import { EmbeddingTable } from '../server/engine/embeddings';
import { resampleWork } from '../server/engine/image/pillowResize';
import { sanitizeSvg } from '../server/engine/image/svg';
import { preprocessSiglip } from '../server/engine/arch/siglip';
import { readManifest } from '../server/engine/manifest';
import { TextTokenizer } from '../server/engine/tokenizer';
import { loadTarget, TARGETS } from './fuzz/targets';
import { writeTinyCheckpoint } from './helpers/checkpoint/tinyCheckpoint';
import { rejects } from './helpers/assertRejects';
import { repoRoot } from './helpers/paths';

/**
 * Every input a fuzz target ever failed on (test/fuzz/regressions/<target>/), and every committed seed, replayed
 * through the same target: each must now end the way the parser promises. The seeds keep the targets themselves
 * working between fuzzing runs.
 */
const fuzzDir = join(repoRoot, 'test', 'fuzz');
/** The image fuzz target's SigLIP settings (a small anyres grid). */
const THIN_SIGLIP = {
  image: { aspectRatio: 'anyres_max_4', gridPinpoints: [[384, 384], [384, 768], [768, 384]] as [number, number][], mergeType: 'spatial_unpad' as const, newlineFile: 'image_newline.bin' },
  vision: { numLayers: 1, hiddenSize: 32, numHeads: 2, headDim: 16, intermediateSize: 64, layerNormEps: 1e-6, patchSize: 14, imageSize: 384, outHiddenSize: 32 },
};
const inputs = (kind: string, target: string): { name: string; data: Buffer }[] => {
  const dir = join(fuzzDir, kind, target);
  return existsSync(dir) ? readdirSync(dir).sort().map((name) => ({ name, data: readFileSync(join(dir, name)) })) : [];
};

for (const { name } of TARGETS) {
  describe(`fuzz target ${name}: regressions and seeds replayed`, () => {
    const target = loadTarget(name).fuzz;
    before(async () => target.setup?.());
    after(async () => target.teardown?.());
    const cases = [...inputs('regressions', name).map((c) => ({ ...c, name: `regression ${c.name}` })), ...inputs('corpus', name).map((c) => ({ ...c, name: `seed ${c.name}` }))];
    it('has a committed seed corpus', () => assert.ok(inputs('corpus', name).length > 0));
    for (const c of cases) it(c.name, async () => target.fuzz(c.data));
  });
}

describe('fixes for fuzzing findings, asserted directly', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dvl-fuzz-fixes-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('an SVG whose style spells url( with a CSS escape or a character reference is refused', () => {
    for (const style of ['fill:\\75 rl(http://127.0.0.1/p.svg#x)', 'fill:&#117;rl(http://127.0.0.1/p.svg#x)', '@\\69mport "http://127.0.0.1/a.css";']) {
      const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><style>rect{${style}}</style><rect width="4" height="4"/></svg>`);
      assert.throws(() => sanitizeSvg(svg, 'a.svg'), (e: unknown) => e instanceof DiffusionVLError && e.kind === 'image' && /outside resource/.test(e.message), style);
    }
  });

  it('an unterminated url( and an href glued to the previous attribute are neutralised', () => {
    const out = sanitizeSvg(Buffer.from(`<svg width="4" height="4"><style>rect{fill:url("http://127.0.0.1/x.svg#p"</style><image x="0"xlink:href="http://127.0.0.1/i.png"/></svg>`), 'a.svg').toString();
    assert.doesNotMatch(out, /127\.0\.0\.1/);
  });

  it('an entity that carries markup is refused', () => {
    const svg = Buffer.from(`<!DOCTYPE svg [<!ENTITY i "<image href=&#34;http://127.0.0.1/i.png&#34;/>">]><svg width="4" height="4">&i;</svg>`);
    assert.throws(() => sanitizeSvg(svg, 'a.svg'), /entities that contain markup/);
  });

  it('a manifest that is null, or whose fields are missing or out of range, is a model error naming the field', async () => {
    const good = JSON.parse(await readFile(join(repoRoot, 'models', 'default', 'manifest.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const cases: [unknown, RegExp][] = [
      [null, /not a JSON object/],
      [{ ...good, text: undefined }, /text must be an object/],
      [{ ...good, embeddings: { ...good.embeddings, cols: -1 } }, /embeddings\.cols must be an integer/],
      [{ ...good, embeddings: { ...good.embeddings, file: '../embeddings.bin' } }, /embeddings\.file must be a file name/],
      [{ ...good, tokens: { ...good.tokens, mask: 1e9 } }, /tokens\.mask/],
    ];
    for (const [m, re] of cases) {
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
      assert.throws(() => readManifest(dir), (e: unknown) => e instanceof DiffusionVLError && e.kind === 'model' && re.test(e.message), re.source);
    }
  });

  it('an embedding table whose size disagrees with the manifest is refused when it opens', () => {
    const file = join(repoRoot, 'models', 'default', 'embeddings.bin');
    assert.throws(() => new EmbeddingTable(file, 466, 128, 'float32'), (e: unknown) => e instanceof DiffusionVLError && e.kind === 'model' && /embeddings\.bin: 238080 bytes/.test(e.message));
  });

  it('a tokenizer.json the library cannot load is a model error naming the file', async () => {
    for (const text of ['{', '[]', '{"model":{"type":"BPE","vocab":7}}']) {
      await writeFile(join(dir, 'tokenizer.json'), text);
      assert.throws(() => TextTokenizer.fromFile(join(dir, 'tokenizer.json')), (e: unknown) => e instanceof DiffusionVLError && e.kind === 'model' && /tokenizer\.json: /.test(e.message), text);
    }
  });

  it('thin images of 65,000 rows cost the resampler little work: palette views NEAREST, the pad square never built', async () => {
    // Work is counted in the resampler's multiply-adds, which no machine load changes. The GIF took 11 s (load 14) on
    // the anyres path when palette images were resampled BICUBIC; the strip's pad square is 12.9 GB if built.
    const gif = readFileSync(join(fuzzDir, 'regressions', 'image', 'gif-21-by-64771-anyres-slow'));
    const strip = await sharp({ create: { width: 1, height: 65_535, channels: 3, background: '#3a7' }, limitInputPixels: false }).png().toBuffer();
    for (const [input, name] of [[gif, 'GIF 21×64771'], [strip, 'PNG 1×65535']] as const) {
      for (const mode of ['pad', 'anyres_max_4'] as const) {
        const before = resampleWork.multiplyAdds;
        const pre = await preprocessSiglip(input, THIN_SIGLIP, mode, 'drop');
        const work = resampleWork.multiplyAdds - before;
        assert.equal(pre.pixelValues.length, pre.views.length * 3 * 384 * 384);
        // A 1-pixel-wide strip has no palette, so its anyres views are upscaled BICUBIC across every row: ≈ 378 M.
        const bound = name.startsWith('PNG') && mode !== 'pad' ? 400e6 : 25e6;
        assert.ok(work < bound, `${name} ${mode}: ${(work / 1e6).toFixed(1)} M multiply-adds, over ${bound / 1e6} M`);
      }
    }
  });

  it('a config claiming a billion layers fails at once, naming the field, instead of listing a billion tensor names', async () => {
    const ckpt = join(dir, 'ckpt');
    await writeTinyCheckpoint(ckpt, { text: { vocabSize: 300, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2 }, vision: { depth: 2, hiddenSize: 16, numHeads: 2, intermediateSize: 24, fullAttentionBlocks: [1] } });
    const config = JSON.parse(await readFile(join(ckpt, 'config.json'), 'utf8')) as Record<string, unknown>;
    const textConfig = config.text_config as Record<string, unknown> | undefined;
    await writeFile(join(ckpt, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 1e9, ...(textConfig ? { text_config: { ...textConfig, num_hidden_layers: 1e9 } } : {}) }));
    const t0 = Date.now();
    await rejects(openCheckpoint(ckpt), /num_hidden_layers=1000000000, but the checkpoint does not store model\.layers\.999999999\./);
    assert.ok(Date.now() - t0 < 10_000);
  });
});
