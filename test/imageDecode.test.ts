import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { InputError } from '../server/engine/api';
import { decodeImage, decodeImageRaw, type DecodeOptions } from '../server/engine/image';
import { QWEN_IMAGE_DEFAULTS, preprocessImage } from '../server/engine/arch/qwenvl/preprocess';
import { sanitizeSvg } from '../server/engine/image/svg';
import { DOWNSCALED_PIXELS, MAX_IMAGE_PIXELS } from '../server/engine/image/limits';
import { goldenDir } from './helpers/paths';
import { pngChunk } from './helpers/png';

const opts: DecodeOptions = { alpha: 'white', maxInputPixels: MAX_IMAGE_PIXELS, maxInputBytes: 64 * 1024 * 1024 };
const golden = (f: string) => join(goldenDir, 'images', f);
const img1 = readFileSync(golden('img1_rgb_300x200.png'));
const tmp = mkdtempSync(join(tmpdir(), 'dvl-image-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const pixel = (img: { width: number; data: Uint8Array }, x: number, y: number) => {
  const i = (y * img.width + x) * 3;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
};
const solid = (width: number, height: number, background: string) =>
  sharp({ create: { width, height, channels: 3, background } }).png().toBuffer();

test('grayscale PNG is replicated to RGB', async () => {
  const img = await decodeImage({ path: golden('img5_gray_64x48.png') }, opts);
  assert.equal(img.data.length, 64 * 48 * 3);
  for (const [x, y] of [
    [0, 0],
    [20, 30],
    [63, 47],
    [5, 40],
  ]) {
    const v = ((x - 20) ** 2 + (y - 30) ** 2) % 256;
    assert.deepEqual(pixel(img, x, y), [v, v, v]);
  }
});

test('EXIF orientation is applied (JPEG, orientation 6)', async () => {
  const jpeg = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#00ff00' } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);
  const img = await decodeImage({ bytes: jpeg }, opts);
  assert.deepEqual([img.width, img.height], [20, 40]);
  const r = await preprocessImage({ bytes: jpeg }, QWEN_IMAGE_DEFAULTS);
  assert.deepEqual(r.original, { width: 20, height: 40 });
});

test('WebP, TIFF, AVIF and GIF decode', async () => {
  const lossless = await decodeImage(img1, opts);
  const webp = await decodeImage(await sharp(img1).webp({ lossless: true }).toBuffer(), opts);
  assert.deepEqual(webp.data, lossless.data);
  const tiff = await decodeImage(await sharp(img1).tiff({ compression: 'lzw' }).toBuffer(), opts);
  assert.deepEqual(tiff.data, lossless.data);
  const avif = await decodeImage(await sharp(await solid(16, 8, '#ff0000')).avif().toBuffer(), opts);
  assert.deepEqual([avif.width, avif.height], [16, 8]);
  const [r, g, b] = pixel(avif, 8, 4);
  assert.ok(r > 200 && g < 60 && b < 60, `AVIF red came back as ${[r, g, b]}`);
  const gif = await decodeImage(await sharp(img1).gif().toBuffer(), opts);
  assert.deepEqual([gif.width, gif.height], [300, 200]);
});

test('animated GIF: the first frame only', async () => {
  const frames = [await solid(8, 6, '#ff0000'), await solid(8, 6, '#0000ff')];
  const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const img = await decodeImage(gif, opts);
  assert.deepEqual([img.width, img.height], [8, 6]);
  assert.deepEqual(pixel(img, 7, 5), [255, 0, 0]);
});

test('16-bit PNG keeps the high byte of each sample', async () => {
  const samples = new Uint16Array([0, 0x01ff, 0xfffe, 0x8000, 0x7fff, 0x1234]);
  const png = await sharp(samples, { raw: { width: 2, height: 1, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(png).metadata()).depth, 'ushort');
  const img = await decodeImage(png, opts);
  assert.deepEqual([...img.data], [...samples].map((v) => v >> 8));
});

/** A BMP file: 14-byte file header + DIB header + optional palette/masks + bottom-up rows padded to 4 bytes. */
function bmp(width: number, height: number, bpp: number, row: (y: number) => number[], extra: { compression?: number; dib?: Buffer; palette?: number[][] } = {}): Buffer {
  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  const dib = extra.dib ?? Buffer.alloc(40);
  dib.writeUInt32LE(dib.length, 0);
  dib.writeInt32LE(width, 4);
  dib.writeInt32LE(height, 8);
  dib.writeUInt16LE(1, 12);
  dib.writeUInt16LE(bpp, 14);
  dib.writeUInt32LE(extra.compression ?? 0, 16);
  const palette = Buffer.from((extra.palette ?? []).flatMap(([r, g, b]) => [b, g, r, 0]));
  if (extra.palette) dib.writeUInt32LE(extra.palette.length, 32);
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) Buffer.from(row(y)).copy(pixels, (height - 1 - y) * stride);
  const header = Buffer.alloc(14);
  header.write('BM', 0, 'latin1');
  const offset = 14 + dib.length + palette.length;
  header.writeUInt32LE(offset + pixels.length, 2);
  header.writeUInt32LE(offset, 10);
  return Buffer.concat([header, dib, palette, pixels]);
}

test('BMP: 24-bit, 8-bit palette, 32-bit bit fields with alpha', async () => {
  // 3×2, 24-bit BGR: row 0 red green blue, row 1 white black grey.
  const colours = [
    [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
    ],
    [
      [255, 255, 255],
      [0, 0, 0],
      [128, 128, 128],
    ],
  ];
  const b24 = bmp(3, 2, 24, (y) => colours[y].flatMap(([r, g, b]) => [b, g, r]));
  const img24 = await decodeImage(b24, opts);
  assert.deepEqual([img24.width, img24.height], [3, 2]);
  assert.deepEqual([...img24.data], colours.flat(2));

  const b8 = bmp(3, 2, 8, (y) => [y * 3, y * 3 + 1, y * 3 + 2], { palette: colours.flat() });
  assert.deepEqual([...(await decodeImage(b8, opts)).data], colours.flat(2));

  // BITMAPV4HEADER (108 bytes) with BGRA masks; left pixel fully transparent red, right opaque blue.
  const dib = Buffer.alloc(108);
  dib.writeUInt32LE(0x00ff0000, 40);
  dib.writeUInt32LE(0x0000ff00, 44);
  dib.writeUInt32LE(0x000000ff, 48);
  dib.writeUInt32LE(0xff000000, 52);
  const b32 = bmp(2, 1, 32, () => [0, 0, 255, 0, 255, 0, 0, 255], { compression: 3, dib });
  assert.deepEqual([...(await decodeImage(b32, { ...opts, alpha: 'white' })).data], [255, 255, 255, 0, 0, 255]);
  assert.deepEqual([...(await decodeImage(b32, { ...opts, alpha: 'drop' })).data], [255, 0, 0, 0, 0, 255]);

  await assert.rejects(decodeImage(bmp(2, 2, 8, () => [0, 0], { compression: 1, palette: [[0, 0, 0]] }), opts), /compressed BMP/);
  await assert.rejects(decodeImage(b24.subarray(0, b24.length - 4), opts), (e: Error) => e instanceof InputError && /truncated/.test(e.message));
});

test('a BMP above the downscale threshold is shrunk while it decodes (8200×6200 1-bit, 51 MP: not 153 MB decoded whole)', async () => {
  const [w, h] = [8200, 6200];
  // Left 4100 columns white (palette 1), the rest black (palette 0); one row repeated.
  const row = Buffer.alloc(Math.floor((w + 31) / 32) * 4);
  row.fill(0xff, 0, 512); // 4096 white columns
  row[512] = 0xf0; // and 4 more
  const file = bmp(w, h, 1, () => [...row], { palette: [[0, 0, 0], [255, 255, 255]] });
  const t0 = Date.now();
  const img = await decodeImageRaw(file, opts);
  const k = Math.ceil(Math.sqrt((w * h) / DOWNSCALED_PIXELS));
  assert.deepEqual([img.width, img.height, img.channels], [Math.ceil(w / k), Math.ceil(h / k), 3]);
  assert.ok(img.width * img.height <= DOWNSCALED_PIXELS * 1.01, `${img.width}×${img.height}`);
  assert.deepEqual(img.original, { width: w, height: h });
  // Box averages: white, black, and the column straddling x = 4100 (k = 2: 4100 is even, so none is mixed).
  const at = (x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
  assert.deepEqual(at(0, 0), [255, 255, 255]);
  assert.deepEqual(at(4100 / k - 1, img.height - 1), [255, 255, 255]);
  assert.deepEqual(at(4100 / k, 7), [0, 0, 0]);
  console.log(`# shrink-decoded in ${Date.now() - t0} ms (taken under load: load average ${loadavg()[0].toFixed(1)})`);
  // Over the pixel limit: refused from the header, before the rows are even checked for length.
  const header = bmp(20000, 10001, 1, () => [], { palette: [[0, 0, 0], [255, 255, 255]] });
  await assert.rejects(decodeImageRaw(header, opts), isInputError(/20000×10001 = 200020000 pixels, over the limit of 200000000/));
});

test('SVG is rasterised', async () => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10" fill="#0000ff"/></svg>';
  const img = await decodeImage(Buffer.from(svg), opts);
  assert.deepEqual([img.width, img.height], [20, 10]);
  assert.deepEqual(pixel(img, 10, 5), [0, 0, 255]);
  const svgz = await decodeImage(gzipSync(svg), opts);
  assert.deepEqual(svgz.data, img.data);
});

test('SVG external references are never fetched and do not hang', { timeout: 15_000 }, async () => {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const svg = `<?xml version="1.0"?>
<?xml-stylesheet href="${base}/style.css"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "${base}/svg11.dtd">
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xi="http://www.w3.org/2001/XInclude" width="20" height="10">
  <style>@import url("${base}/import.css"); rect { fill: url(${base}/paint.svg#p) red; }</style>
  <rect width="20" height="10" fill="red"/>
  <image href="${base}/a.png" width="20" height="10"/>
  <image xlink:href='${base}/b.png' width="20" height="10"/>
  <use href="${base}/sprite.svg#x"/>
  <xi:include href="${base}/inc.svg"/>
  <image href="file:///etc/hostname" width="20" height="10"/>
  <image href="data:image/png;base64,AAAA" width="1" height="1"/>
</svg>`;
    const clean = sanitizeSvg(Buffer.from(svg), 'test').toString();
    assert.ok(!clean.includes(base), clean);
    assert.ok(!clean.includes('file:'), clean);
    assert.ok(clean.includes('data:image/png'), 'inline data: URIs are kept');

    const img = await decodeImage(Buffer.from(svg), opts);
    assert.deepEqual([img.width, img.height], [20, 10]);
    const path = join(tmp, 'external.svg');
    writeFileSync(path, svg);
    await decodeImage({ path }, opts);
    await new Promise((resolve) => setTimeout(resolve, 100)); // let any stray connection arrive
    assert.deepEqual(requests, []);
  } finally {
    server.close();
  }
});

test('SVG with external entities is refused', async () => {
  const svg = '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><text>&x;</text></svg>';
  await assert.rejects(decodeImage(Buffer.from(svg), opts), (e: Error) => e instanceof InputError && /external entities/.test(e.message));
});

/** A PNG that declares width×height in IHDR and carries one tiny IDAT (what a decompression bomb's header looks like). */
function pngHeaderOnly(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(64))), pngChunk('IEND', Buffer.alloc(0))]);
}

const isInputError = (pattern: RegExp) => (e: Error) => {
  assert.ok(e instanceof InputError, `expected InputError, got ${e.name}: ${e.message}`);
  assert.match(e.message, pattern);
  return true;
};

test('bad inputs throw InputError with a clear message', async () => {
  await assert.rejects(decodeImage(Buffer.alloc(0), opts), isInputError(/empty/));
  await assert.rejects(decodeImage({ bytes: new Uint8Array(0) }, opts), isInputError(/empty/));
  await assert.rejects(decodeImage(img1.subarray(0, img1.length >> 1), opts), isInputError(/cannot decode/));
  const jpeg = await sharp(img1).jpeg().toBuffer();
  await assert.rejects(decodeImage(jpeg.subarray(0, jpeg.length >> 1), opts), isInputError(/cannot decode/));
  const corrupt = Buffer.from(img1);
  for (let i = 200; i < 260; i++) corrupt[i] ^= 0x5a;
  await assert.rejects(decodeImage(corrupt, opts), isInputError(/cannot decode/));
  await assert.rejects(decodeImage(Buffer.from('just some text, not an image'), opts), isInputError(/not an image/));
  await assert.rejects(decodeImage(Buffer.from('{"json": true}'), opts), isInputError(/not an image/));
  await assert.rejects(decodeImage(gzipSync('not svg'), opts), isInputError(/not an SVG/));

  const missing = join(tmp, 'missing.png');
  await assert.rejects(decodeImage({ path: missing }, opts), isInputError(/missing\.png: no such file/));
  await assert.rejects(decodeImage({ path: tmp }, opts), isInputError(/not a regular file/));
  const textFile = join(tmp, 'notes.png');
  writeFileSync(textFile, 'hello');
  await assert.rejects(decodeImage({ path: textFile }, opts), isInputError(/notes\.png: not an image/));
});

test('decompression-bomb and size guards', async () => {
  await assert.rejects(decodeImage(pngHeaderOnly(30000, 30000), opts), isInputError(/30000×30000 = 900 megapixels, which would exceed the limit of 200000000 pixels/));
  const hugeSvg = '<svg xmlns="http://www.w3.org/2000/svg" width="50000" height="50000"><rect width="10" height="10"/></svg>';
  await assert.rejects(decodeImage(Buffer.from(hugeSvg), opts), isInputError(/exceed the limit/));
  await assert.rejects(decodeImage(img1, { ...opts, maxInputPixels: 300 * 200 - 1 }), isInputError(/exceed the limit of 59999 pixels/));
  await assert.doesNotReject(decodeImage(img1, { ...opts, maxInputPixels: 300 * 200 }));
  await assert.rejects(decodeImage(img1, { ...opts, maxInputBytes: 1000 }), isInputError(/over the limit of 1000/));
  const big = join(tmp, 'big.png');
  writeFileSync(big, img1);
  await assert.rejects(decodeImage({ path: big }, { ...opts, maxInputBytes: 1000 }), isInputError(/big\.png: file is \d+ bytes, over the limit/));
  const bmpBomb = Buffer.alloc(54);
  bmpBomb.write('BM', 0, 'latin1');
  bmpBomb.writeUInt32LE(40, 14);
  bmpBomb.writeInt32LE(40000, 18);
  bmpBomb.writeInt32LE(40000, 22);
  bmpBomb.writeUInt16LE(24, 28);
  await assert.rejects(decodeImage(bmpBomb, opts), isInputError(/over the limit/));
});

test('a large legitimate image (12000×9000 PNG, 108 MP) is shrunk while decoding, not refused', async () => {
  const w = 12000;
  const h = 9000;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="white"/><rect x="1200" y="4500" width="2400" height="3600" fill="purple"/></svg>`;
  const png = await sharp({ create: { width: w, height: h, channels: 3, background: 'white' }, limitInputPixels: false })
    .composite([{ input: Buffer.from(svg), limitInputPixels: false }])
    .png()
    .toBuffer();
  const rgb = await decodeImage(png, opts);
  assert.deepEqual(rgb.original, { width: w, height: h });
  assert.ok(rgb.width * rgb.height <= DOWNSCALED_PIXELS && rgb.width * rgb.height > DOWNSCALED_PIXELS * 0.99, `${rgb.width}×${rgb.height}`);
  assert.equal(Math.round((rgb.width / rgb.height) * 100), Math.round((w / h) * 100));
  // The purple bar is still where it was: sample its centre in the shrunk image.
  const x = Math.round(rgb.width * 0.15);
  const y = Math.round(rgb.height * 0.7);
  assert.deepEqual([...rgb.data.subarray((y * rgb.width + x) * 3, (y * rgb.width + x) * 3 + 3)], [128, 0, 128]);
  // Under the threshold nothing changes size.
  const small = await decodeImage(img1, opts);
  assert.equal(small.original, undefined);
});

test('preprocessImage rejects bad options and extreme aspect ratios as InputError', async () => {
  await assert.rejects(preprocessImage(img1, { ...QWEN_IMAGE_DEFAULTS, minPixels: 10, maxPixels: 5 }), InputError);
  await assert.rejects(preprocessImage(img1, { ...QWEN_IMAGE_DEFAULTS, patchSize: 0 }), InputError);
  const strip = await sharp({ create: { width: 1000, height: 4, channels: 3, background: '#808080' } }).png().toBuffer();
  await assert.rejects(preprocessImage(strip, QWEN_IMAGE_DEFAULTS), isInputError(/aspect ratio/));
});
