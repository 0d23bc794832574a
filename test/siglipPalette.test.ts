// Palette ('P') and 1-bit ('1') images on the SigLIP path: the official code resizes them in their own mode, where
// Pillow's `Image.resize` samples NEAREST whatever filter is asked, and converts to RGB afterwards. The expected
// pixels are computed here from the palette indices themselves, with Pillow's NEAREST coordinate rule.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { preprocessSiglip } from '../server/engine/arch/siglip';
import { resizeAndPadGeometry, selectBestResolution } from '../server/engine/arch/siglip/anyres';
import { decodeImageRaw } from '../server/engine/image/decode';
import { resizeBicubic } from '../server/engine/image/pillowResize';
import type { SiglipManifest } from '../server/engine/manifest';
import { Xoshiro128 } from '../server/engine/rng';
import { pngChunk } from './helpers/png';

const PINPOINTS: [number, number][] = [];
for (let i = 1; i <= 6; i++) for (let j = 1; j <= 6; j++) PINPOINTS.push([384 * i, 384 * j]);
const M = { image: { gridPinpoints: PINPOINTS } as SiglipManifest['image'], vision: { imageSize: 384, patchSize: 14 } as SiglipManifest['vision'] };
const LIMITS = { maxInputPixels: 1e8, maxInputBytes: 1e8 };

/** A minimal PNG writer: 8-bit palette (colour type 3, with optional tRNS) or 1-bit grey (colour type 0). */
function png(width: number, height: number, kind: 'palette' | 'bilevel', rows: Uint8Array[], plte?: Uint8Array, trns?: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = kind === 'palette' ? 8 : 1;
  ihdr[9] = kind === 'palette' ? 3 : 0;
  const raw = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), r])));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    ...(plte ? [pngChunk('PLTE', plte)] : []),
    ...(trns ? [pngChunk('tRNS', trns)] : []),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** Pillow's ImagingScaleAffine: source position starts at in/out·0.5 and advances by in/out (float64), truncated. */
function pillowNearest(inSize: number, outSize: number): number[] {
  const step = inSize / outSize;
  const out: number[] = [];
  for (let i = 0, pos = step * 0.5; i < outSize; i++, pos += step) out.push(Math.floor(pos));
  return out;
}

/** Expected RGB of an index image resized NEAREST to w×h, then converted through its colour table. */
function expectNearest(colourOf: (x: number, y: number) => [number, number, number], srcW: number, srcH: number, w: number, h: number): Uint8Array {
  const xs = pillowNearest(srcW, w);
  const ys = pillowNearest(srcH, h);
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.set(colourOf(xs[x], ys[y]), (y * w + x) * 3);
  return out;
}

/** The anyres canvas rebuilt from the views: base view, then tiles row-major. */
function canvasOf(views: { data: Uint8Array }[], grid: [number, number], size: number): Uint8Array {
  const [rows, cols] = grid;
  const w = cols * size;
  const out = new Uint8Array(rows * size * w * 3);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const tile = views[1 + r * cols + c].data;
      for (let y = 0; y < size; y++) out.set(tile.subarray(y * size * 3, (y + 1) * size * 3), ((r * size + y) * w + c * size) * 3);
    }
  }
  return out;
}

async function checkAnyres(bytes: Buffer, width: number, height: number, colourOf: (x: number, y: number) => [number, number, number]): Promise<void> {
  const pre = await preprocessSiglip(bytes, M, 'anyres_max_9');
  // Base view: the whole image squashed to 384×384.
  const base = expectNearest(colourOf, width, height, 384, 384);
  assert.ok(Buffer.from(pre.views[0].data).equals(Buffer.from(base)), 'base view is not Pillow NEAREST of the palette indices');
  // Tiles: the NEAREST resize pasted on a black canvas.
  const [tw, th] = selectBestResolution(width, height, PINPOINTS);
  const geo = resizeAndPadGeometry(width, height, tw, th);
  const resized = expectNearest(colourOf, width, height, geo.width, geo.height);
  const canvas = new Uint8Array(tw * th * 3);
  for (let y = 0; y < geo.height; y++) canvas.set(resized.subarray(y * geo.width * 3, (y + 1) * geo.width * 3), ((geo.y + y) * tw + geo.x) * 3);
  assert.deepEqual(pre.grid, [th / 384, tw / 384]);
  assert.ok(Buffer.from(canvasOf(pre.views, pre.grid, 384)).equals(Buffer.from(canvas)), 'tiles are not the NEAREST resize on a black canvas');
  // And BICUBIC of the expanded colours (what an RGB image gets) is really different here.
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgb.set(colourOf(x, y), (y * width + x) * 3);
  assert.ok(!Buffer.from(resizeBicubic({ width, height, data: rgb }, 384, 384).data).equals(Buffer.from(base)), 'BICUBIC and NEAREST agree: the image does not tell them apart');
}

test('SigLIP anyres: a palette PNG (with tRNS) resamples NEAREST from its indices, colours taken unpremultiplied', async () => {
  const rng = new Xoshiro128(7);
  const W = 157;
  const H = 93;
  const plte = new Uint8Array(64 * 3).map(() => Math.floor(rng.nextFloat() * 256));
  const trns = new Uint8Array(64).map((_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? 128 : 255));
  const indices = Array.from({ length: H }, () => new Uint8Array(W).map(() => Math.floor(rng.nextFloat() * 64)));
  const bytes = png(W, H, 'palette', indices, plte, trns);
  const raw = await decodeImageRaw(bytes, LIMITS);
  assert.equal(raw.sourceMode, 'P');
  const colourOf = (x: number, y: number): [number, number, number] => {
    const i = indices[y][x];
    return [plte[i * 3], plte[i * 3 + 1], plte[i * 3 + 2]];
  };
  await checkAnyres(bytes, W, H, colourOf);
});

test('SigLIP anyres: a 1-bit grey PNG (mode "1") resamples NEAREST', async () => {
  const rng = new Xoshiro128(11);
  const W = 203;
  const H = 77;
  const bits = Array.from({ length: H }, () => Array.from({ length: W }, () => (rng.nextFloat() < 0.5 ? 0 : 1)));
  const rows = bits.map((r) => {
    const packed = new Uint8Array(Math.ceil(W / 8));
    r.forEach((b, x) => (packed[x >> 3] |= b << (7 - (x & 7))));
    return packed;
  });
  const bytes = png(W, H, 'bilevel', rows);
  assert.equal((await decodeImageRaw(bytes, LIMITS)).sourceMode, '1');
  await checkAnyres(bytes, W, H, (x, y) => (bits[y][x] ? [255, 255, 255] : [0, 0, 0]));
});

test('SigLIP anyres: a GIF (opened by Pillow as "P") resamples NEAREST', async () => {
  const rng = new Xoshiro128(5);
  const W = 121;
  const H = 67;
  const colours = Array.from({ length: 8 }, () => [0, 0, 0].map(() => Math.floor(rng.nextFloat() * 256)) as [number, number, number]);
  const idx = Array.from({ length: H }, () => Array.from({ length: W }, () => Math.floor(rng.nextFloat() * 8)));
  const rgb = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.set(colours[idx[y][x]], (y * W + x) * 3);
  const gif = await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).gif({ colours: 8, dither: 0 }).toBuffer();
  assert.equal((await decodeImageRaw(gif, LIMITS)).sourceMode, 'P');
  // The GIF's own table holds the colours (quantised by the encoder): read them back as the decoder expands them.
  const dec = await sharp(gif).raw().toBuffer({ resolveWithObject: true });
  const ch = dec.info.channels;
  await checkAnyres(gif, W, H, (x, y) => {
    const o = (y * W + x) * ch;
    return [dec.data[o], dec.data[o + 1], dec.data[o + 2]];
  });
});

test('an RGB PNG is not taken for a palette one (BICUBIC stays)', async () => {
  const bytes = await sharp(Buffer.alloc(30 * 20 * 3, 90), { raw: { width: 30, height: 20, channels: 3 } }).png().toBuffer();
  assert.equal((await decodeImageRaw(bytes, LIMITS)).sourceMode, undefined);
});
