import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeImage, resizeBicubic, sha256OfFloat32, type RgbImage } from '../server/engine/image';
import { resizeBicubicOnCanvas } from '../server/engine/image/pillowResize';
import { QWEN_IMAGE_DEFAULTS, preprocessImage, preprocessImages } from '../server/engine/arch/qwenvl/preprocess';
import { goldenDir } from './helpers/paths';

interface ProcessorCase {
  name: string;
  files: string[];
  min_pixels?: number;
  max_pixels?: number;
  image_grid_thw: [number, number, number][];
  resized_hw?: [number, number];
  shape: [number, number];
  sha256: string;
}
interface ResizeCase {
  source: string;
  size_wh: [number, number];
  sha256: string;
}
const golden = JSON.parse(readFileSync(join(goldenDir, 'preprocess.json'), 'utf8')) as {
  processor: ProcessorCase[];
  pillow_resize: ResizeCase[];
};
const imagePath = (file: string) => join(goldenDir, 'images', file);
// The reference processor dropped alpha (PIL convert("RGB")), so goldens are compared with alpha 'drop'.
const dropOpts = { ...QWEN_IMAGE_DEFAULTS, alpha: 'drop' as const };

for (const c of golden.processor) {
  test(`golden pixel_values: ${c.name}`, async () => {
    const opts = { ...dropOpts, minPixels: c.min_pixels ?? dropOpts.minPixels, maxPixels: c.max_pixels ?? dropOpts.maxPixels };
    const r = await preprocessImages(
      c.files.map((f) => ({ path: imagePath(f) })),
      opts,
    );
    assert.deepEqual(r.gridThw, c.image_grid_thw);
    assert.equal(r.pixelValues.length, c.shape[0] * c.shape[1]);
    if (c.resized_hw) assert.deepEqual([r.images[0].resized.height, r.images[0].resized.width], c.resized_hw);
    assert.equal(sha256OfFloat32(r.pixelValues), c.sha256);
  });
}

/** The generated 1000×750 pattern the Pillow resize hashes were made from. */
function pattern1000x750(): RgbImage {
  const width = 1000;
  const height = 750;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0, o = 0; y < height; y++) {
    for (let x = 0; x < width; x++, o += 3) {
      data[o] = (x * x + y * 7) % 256;
      data[o + 1] = (x * 3 + y * y) % 256;
      data[o + 2] = ((x ^ y) * 5) % 256;
    }
  }
  return { width, height, data };
}

test('bicubic resize is bit-exact with Pillow, downscaling and mixed too', async () => {
  const sources = new Map<string, RgbImage>([['pattern_1000x750', pattern1000x750()]]);
  for (const c of golden.pillow_resize) {
    let src = sources.get(c.source);
    if (!src) {
      src = await decodeImage({ path: imagePath(c.source) }, { alpha: 'drop', maxInputPixels: 1e8, maxInputBytes: 1e8 });
      sources.set(c.source, src);
    }
    const out = resizeBicubic(src, c.size_wh[0], c.size_wh[1]);
    assert.equal(out.data.length, c.size_wh[0] * c.size_wh[1] * 3);
    assert.equal(createHash('sha256').update(out.data).digest('hex'), c.sha256, `${c.source} → ${c.size_wh.join('×')}`);
  }
});

test('resizing an image pasted on a fill without building the canvas gives the canvas resize, pixel for pixel', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let t = 0; t < 300; t++) {
    const [w, h] = [1 + rnd(30), 1 + rnd(30)];
    const [cw, ch] = [w + rnd(3) * rnd(50), h + rnd(3) * rnd(50)];
    const [x, y] = [rnd(cw - w + 1), rnd(ch - h + 1)];
    // A quarter keep the canvas's width or height (one pass only), the rest scale both ways, up and down.
    const [ow, oh] = [rnd(4) === 0 ? cw : 1 + rnd(70), rnd(4) === 0 ? ch : 1 + rnd(70)];
    // Saturated pixels beside mid-tones, so the cubic's overshoot is clipped somewhere.
    const src: RgbImage = { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => (rnd(4) === 0 ? 255 * rnd(2) : rnd(256))) };
    const fill: [number, number, number] = [rnd(256), rnd(256), rnd(256)];
    const canvas: RgbImage = { width: cw, height: ch, data: new Uint8Array(cw * ch * 3) };
    for (let i = 0; i < cw * ch; i++) canvas.data.set(fill, i * 3);
    for (let r = 0; r < h; r++) canvas.data.set(src.data.subarray(r * w * 3, (r + 1) * w * 3), ((y + r) * cw + x) * 3);
    const expected = resizeBicubic(canvas, ow, oh).data;
    assert.deepEqual(resizeBicubicOnCanvas(src, cw, ch, x, y, fill, ow, oh).data, expected, JSON.stringify({ w, h, cw, ch, x, y, ow, oh }));
  }
});

test('same-size resize is an exact copy', () => {
  const src = pattern1000x750();
  const out = resizeBicubic(src, src.width, src.height);
  assert.notEqual(out.data, src.data);
  assert.deepEqual(out.data, src.data);
});

test("alpha 'white' composites the transparent region over white; 'drop' keeps stored RGB", async () => {
  const path = imagePath('img4_rgba_120x90.png');
  const limits = { maxInputPixels: 1e8, maxInputBytes: 1e8 };
  const white = await decodeImage({ path }, { alpha: 'white', ...limits });
  const drop = await decodeImage({ path }, { alpha: 'drop', ...limits });
  // Left third is fully transparent with non-zero stored RGB; right third is opaque.
  for (const [x, y] of [
    [0, 0],
    [10, 45],
    [39, 89],
  ]) {
    const i = (y * 120 + x) * 3;
    assert.deepEqual([...white.data.subarray(i, i + 3)], [255, 255, 255]);
    assert.deepEqual([...drop.data.subarray(i, i + 3)], [(x * 2 + 40) % 256, (y * 2 + 80) % 256, Math.floor((x * y) / 7) % 256]);
  }
  const i = (50 * 120 + 100) * 3;
  assert.deepEqual(white.data.subarray(i, i + 3), drop.data.subarray(i, i + 3));

  const pw = await preprocessImage({ path }, QWEN_IMAGE_DEFAULTS); // default alpha is 'white'
  const pd = await preprocessImage({ path }, dropOpts);
  assert.deepEqual(pw.gridThw, pd.gridThw);
  assert.notEqual(sha256OfFloat32(pw.pixelValues), sha256OfFloat32(pd.pixelValues));
  // The first row is the top-left 14×14 patch, deep inside the transparent region: white normalises to about 1.9–2.15.
  const row = pw.pixelValues.subarray(0, 1176);
  for (const v of row) assert.ok(v > 1.8, `expected white-ish, got ${v}`);
});
