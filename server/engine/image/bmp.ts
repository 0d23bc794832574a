import { InputError } from '../api';
import { DOWNSCALE_ABOVE_PIXELS, DOWNSCALED_PIXELS, MAX_IMAGE_SIDE } from './limits';

/**
 * A small BMP decoder: sharp (libvips without ImageMagick) cannot read BMP. Covers what real files use:
 * uncompressed 1/4/8-bit palette, 16/24/32-bit, and BI_BITFIELDS masks for 16/32-bit. RLE and embedded
 * JPEG/PNG are rejected. As in Pillow, 32-bit BI_RGB has no alpha (the 4th byte is padding) and
 * BI_BITFIELDS with an alpha mask yields RGBA.
 *
 * The declared size is checked against the image limits before anything is allocated, and an image above the
 * decoder's downscale threshold is shrunk row by row while it decodes (box average), as sharp's path shrinks while
 * decoding: a 32 MB 1-bit file can declare 200 megapixels, which decoded whole would be 600 MB.
 */

export interface RawPixels {
  width: number;
  height: number;
  channels: 3 | 4;
  data: Uint8Array;
  /** Size in the file, when it was shrunk while decoding. */
  original?: { width: number; height: number };
}

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/** Scales a masked channel to 0..255 (floor(v·255/max), Pillow's choice for 5/6-bit fields). */
function channelReader(mask: number): (px: number) => number {
  if (mask === 0) return () => 255;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  if (max === 255) return (px) => (px >>> shift) & 255;
  return (px) => Math.floor((((px & mask) >>> shift) * 255) / max);
}

export function decodeBmp(bytes: Uint8Array, label: string, maxPixels: number, downscaleAbovePixels = DOWNSCALE_ABOVE_PIXELS): RawPixels {
  const fail = (what: string): never => {
    throw new InputError(`${label}: ${what}`);
  };
  if (bytes.length < 26) fail('truncated BMP header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const headerSize = dv.getUint32(14, true);
  let width: number;
  let height: number;
  let bpp: number;
  let compression = BI_RGB;
  let paletteEntrySize = 4;
  let colorsUsed = 0;
  if (headerSize === 12) {
    width = dv.getUint16(18, true);
    height = dv.getInt16(20, true);
    bpp = dv.getUint16(24, true);
    paletteEntrySize = 3;
  } else if (headerSize >= 40) {
    if (bytes.length < 14 + 40) fail('truncated BMP header');
    width = dv.getInt32(18, true);
    height = dv.getInt32(22, true);
    bpp = dv.getUint16(28, true);
    compression = dv.getUint32(30, true);
    colorsUsed = dv.getUint32(46, true);
  } else {
    return fail(`unsupported BMP header size ${headerSize}`);
  }
  const topDown = height < 0;
  height = Math.abs(height);
  if (width <= 0 || height <= 0) fail(`invalid BMP dimensions ${width}×${height}`);
  if (Math.max(width, height) > MAX_IMAGE_SIDE) fail(`${width}×${height} pixels; sides longer than ${MAX_IMAGE_SIDE} pixels are refused`);
  if (width * height > maxPixels) fail(`image is ${width}×${height} = ${width * height} pixels, over the limit of ${maxPixels}`);

  let masks: [number, number, number, number] | undefined;
  if (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    if (bpp !== 16 && bpp !== 32) fail(`BMP bit fields with ${bpp} bits per pixel are not supported`);
    // Masks follow a 40-byte header; V4/V5 headers hold them in place (same offsets).
    if (bytes.length < 14 + 40 + 16) fail('truncated BMP header');
    const alpha = headerSize >= 56 || compression === BI_ALPHABITFIELDS ? dv.getUint32(14 + 52, true) : 0;
    masks = [dv.getUint32(14 + 40, true), dv.getUint32(14 + 44, true), dv.getUint32(14 + 48, true), alpha];
  } else if (compression !== BI_RGB) {
    fail(`compressed BMP (compression ${compression}) is not supported`);
  } else if (bpp === 16) {
    masks = [0x7c00, 0x03e0, 0x001f, 0];
  }
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) fail(`BMP with ${bpp} bits per pixel is not supported`);

  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const entries = colorsUsed || 1 << bpp;
    const start = 14 + headerSize;
    if (entries > 256 || start + entries * paletteEntrySize > bytes.length) fail('truncated or invalid BMP palette');
    palette = new Uint8Array(256 * 3); // missing entries read as black
    for (let i = 0; i < entries; i++) {
      const p = start + i * paletteEntrySize;
      palette[i * 3] = bytes[p + 2];
      palette[i * 3 + 1] = bytes[p + 1];
      palette[i * 3 + 2] = bytes[p];
    }
  }

  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  if (dataOffset + stride * height > bytes.length) fail('truncated BMP pixel data');
  const hasAlpha = masks !== undefined && masks[3] !== 0;
  const channels = hasAlpha ? 4 : 3;
  const readers = masks?.map(channelReader);
  const rowBytes = width * channels;
  /** Decodes stored row `y` (top-down order) into `out` at `o`. */
  const decodeRow = (y: number, out: Uint8Array, o: number): void => {
    const row = dataOffset + (topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++, o += channels) {
      if (palette) {
        const bit = x * bpp;
        const byte = bytes[row + (bit >> 3)];
        const idx = (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        out[o] = palette[idx * 3];
        out[o + 1] = palette[idx * 3 + 1];
        out[o + 2] = palette[idx * 3 + 2];
      } else if (readers) {
        const px = bpp === 16 ? dv.getUint16(row + x * 2, true) : dv.getUint32(row + x * 4, true);
        for (let c = 0; c < channels; c++) out[o + c] = readers[c](px);
      } else {
        const p = row + x * (bpp / 8);
        out[o] = bytes[p + 2];
        out[o + 1] = bytes[p + 1];
        out[o + 2] = bytes[p];
      }
    }
  };
  if (width * height > downscaleAbovePixels) return { ...shrinkWhileDecoding(width, height, channels, decodeRow), original: { width, height } };
  const out = new Uint8Array(rowBytes * height);
  for (let y = 0; y < height; y++) decodeRow(y, out, y * rowBytes);
  return { width, height, channels, data: out };
}

/**
 * Decodes row by row into a k×k box average (k the smallest integer that brings the image to about
 * DOWNSCALED_PIXELS): memory is one decoded row, one row of sums and the small result.
 */
function shrinkWhileDecoding(width: number, height: number, channels: 3 | 4, decodeRow: (y: number, out: Uint8Array, o: number) => void): RawPixels {
  const k = Math.ceil(Math.sqrt((width * height) / DOWNSCALED_PIXELS));
  const ow = Math.ceil(width / k);
  const oh = Math.ceil(height / k);
  const row = new Uint8Array(width * channels);
  const sums = new Uint32Array(ow * channels);
  const out = new Uint8Array(ow * oh * channels);
  for (let oy = 0; oy < oh; oy++) {
    sums.fill(0);
    const y0 = oy * k;
    const rows = Math.min(k, height - y0);
    for (let y = y0; y < y0 + rows; y++) {
      decodeRow(y, row, 0);
      for (let x = 0; x < width; x++) {
        const s = ((x / k) | 0) * channels;
        for (let c = 0; c < channels; c++) sums[s + c] += row[x * channels + c];
      }
    }
    for (let ox = 0, o = oy * ow * channels; ox < ow; ox++) {
      const n = Math.min(k, width - ox * k) * rows;
      for (let c = 0; c < channels; c++, o++) out[o] = Math.round(sums[ox * channels + c] / n);
    }
  }
  return { width: ow, height: oh, channels, data: out };
}
