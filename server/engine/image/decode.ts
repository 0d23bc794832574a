import { stat, readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import sharp, { type SharpOptions } from 'sharp';
import { InputError, type ImageInput } from '../api';
import { decodeBmp, isBmp } from './bmp';
import type { RgbImage } from './pillowResize';
import { DOWNSCALE_ABOVE_PIXELS, DOWNSCALED_PIXELS, MAX_IMAGE_SIDE } from './limits';
import { looksLikeSvg, sanitizeSvg } from './svg';

export type AlphaMode = 'white' | 'drop';

export interface DecodeOptions {
  /** 'white' composites over white; 'drop' discards alpha and keeps the stored RGB, like PIL `convert("RGB")`. */
  alpha: AlphaMode;
  /** Decompression-bomb guard: width·height above this is refused before decoding. */
  maxInputPixels: number;
  /** Images with more pixels than this are shrunk while they decode (default {@link DOWNSCALE_ABOVE_PIXELS}). */
  downscaleAbovePixels?: number;
  /** Largest encoded input accepted, in bytes. */
  maxInputBytes: number;
}


/** Formats we hand to sharp (AVIF/HEIC report as 'heif'). Anything else sharp might know is refused. */
const SHARP_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'svg']);

/** Reads the encoded bytes of an input, enforcing the byte limit before reading a file whole. */
export async function readImageBytes(input: ImageInput | Uint8Array, maxBytes: number): Promise<{ bytes: Uint8Array; label: string }> {
  if (input instanceof Uint8Array) return { bytes: checkSize(input, 'image data', maxBytes), label: 'image data' };
  if ('bytes' in input) {
    const label = input.label ?? 'image data';
    return { bytes: checkSize(input.bytes, label, maxBytes), label };
  }
  const { path } = input;
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read (${(err as Error).message})`);
  }
  if (size > maxBytes) throw new InputError(`${path}: file is ${size} bytes, over the limit of ${maxBytes}`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new InputError(`${path}: cannot read (${(err as Error).message})`);
  }
  return { bytes: checkSize(bytes, path, maxBytes), label: path };
}

function checkSize(bytes: Uint8Array, label: string, maxBytes: number): Uint8Array {
  if (bytes.length === 0) throw new InputError(`${label}: empty input (0 bytes)`);
  if (bytes.length > maxBytes) throw new InputError(`${label}: ${bytes.length} bytes, over the limit of ${maxBytes}`);
  return bytes;
}

function startsWith(bytes: Uint8Array, sig: number[], at = 0): boolean {
  return bytes.length >= at + sig.length && sig.every((b, i) => bytes[at + i] === b);
}

/** Magic numbers of the raster formats sharp decodes; anything else is checked for SVG before sharp sees it. */
function isKnownRaster(b: Uint8Array): boolean {
  return (
    startsWith(b, [0x89, 0x50, 0x4e, 0x47]) || // PNG
    startsWith(b, [0xff, 0xd8, 0xff]) || // JPEG
    startsWith(b, [0x47, 0x49, 0x46, 0x38]) || // GIF8
    (startsWith(b, [0x52, 0x49, 0x46, 0x46]) && startsWith(b, [0x57, 0x45, 0x42, 0x50], 8)) || // RIFF....WEBP
    startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || // TIFF little-endian
    startsWith(b, [0x4d, 0x4d, 0x00, 0x2a]) || // TIFF big-endian
    startsWith(b, [0x66, 0x74, 0x79, 0x70], 4) // ISO-BMFF "ftyp": AVIF, HEIC
  );
}

/** Sharp's messages are terse; keep them but say which input and what kind of problem. */
function sharpError(err: unknown, label: string, maxPixels: number): InputError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(msg)) return tooManyPixels(label, undefined, maxPixels);
  if (/unsupported image format/i.test(msg)) return new InputError(`${label}: not an image, or an unsupported image format`);
  return new InputError(`${label}: cannot decode image (${msg.trim()})`);
}

function tooLong(label: string, size: { width: number; height: number }): InputError {
  return new InputError(`${label}: ${size.width}×${size.height} pixels; sides longer than ${MAX_IMAGE_SIDE} pixels are refused`);
}

function tooManyPixels(label: string, size: { width: number; height: number } | undefined, maxPixels: number): InputError {
  const dims = size ? `${size.width}×${size.height} = ${((size.width * size.height) / 1e6).toFixed(0)} megapixels, which would ` : 'its dimensions ';
  return new InputError(`${label}: ${dims}exceed the limit of ${maxPixels} pixels; images that large are refused as possible decompression bombs`);
}

/** Any 1–4 channel 8-bit image → RGB: grey is replicated, alpha composited over white or dropped. */
export function toRgb(data: Uint8Array, width: number, height: number, channels: number, alpha: AlphaMode): RgbImage {
  const n = width * height;
  if (channels === 3) return { width, height, data: data.length === n * 3 ? data : data.subarray(0, n * 3) };
  const out = new Uint8Array(n * 3);
  const colour = channels >= 3 ? 3 : 1;
  const hasAlpha = channels === 2 || channels === 4;
  for (let i = 0, s = 0, o = 0; i < n; i++, s += channels, o += 3) {
    for (let c = 0; c < 3; c++) {
      const v = data[s + (colour === 3 ? c : 0)];
      if (hasAlpha && alpha === 'white') {
        const a = data[s + channels - 1];
        // Integer "over" onto opaque white, rounded to nearest.
        out[o + c] = Math.floor((v * a + 255 * (255 - a) + 127) / 255);
      } else {
        out[o + c] = v;
      }
    }
  }
  return { width, height, data: out };
}

/**
 * Decodes an image to 8-bit RGB with EXIF orientation applied. Embedded ICC profiles of RGB and grey images are
 * ignored (PIL does not apply them either, and the reference processor works on the stored values); JPEGs decode
 * identically to PIL's (libjpeg-turbo lineage, same upsampling). 16-bit samples keep their high byte (v >> 8),
 * which is what PIL does for 16-bit RGB(A) PNGs; for 16-bit grey PIL clips instead, which we do not imitate.
 * Multi-frame inputs (GIF, WebP, TIFF) use the first frame.
 */
/** A decoded image, and its size in the file when it was shrunk while decoding. */
export type DecodedImage = RgbImage & { original?: { width: number; height: number } };

export async function decodeImage(input: ImageInput | Uint8Array, opts: DecodeOptions): Promise<DecodedImage> {
  const raw = await decodeImageRaw(input, opts);
  const rgb: DecodedImage = toRgb(raw.data, raw.width, raw.height, raw.channels, opts.alpha);
  if (raw.original) rgb.original = raw.original;
  return rgb;
}

/** A decoded 8-bit image with its own channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (interleaved). */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
  /** Size in the file, when it was shrunk while decoding (above DOWNSCALE_ABOVE_PIXELS). */
  original?: { width: number; height: number };
  /**
   * The mode Pillow opens the file in when it is one whose `Image.resize` ignores the filter and samples NEAREST:
   * 'P' (palette: PNG colour type 3, GIF, palette TIFF) or '1' (1-bit grey PNG/TIFF). Absent for every other image.
   * `data` is always expanded (palette → RGB(A), 1-bit → 0/255 grey), so NEAREST on it picks the same colours.
   */
  sourceMode?: PilNearestMode;
}

export type PilNearestMode = 'P' | '1';

/**
 * Pillow's mode for the header sharp read, where it is 'P' or '1'. Not covered: a GIF whose palette is exactly the
 * grey ramp (Pillow opens it as 'L'), BMP palettes (our own decoder; Pillow opens them as 'P', '1' or 'L').
 */
function pilNearestMode(meta: { format: string; isPalette?: boolean; channels?: number; bitsPerSample?: number }): PilNearestMode | undefined {
  if (meta.format !== 'png' && meta.format !== 'gif' && meta.format !== 'tiff') return undefined;
  if (meta.isPalette) return 'P';
  if (meta.format !== 'gif' && meta.channels === 1 && meta.bitsPerSample === 1) return '1';
  return undefined;
}

/** decodeImage without the conversion to RGB (for pipelines that must see the alpha channel, as PIL does). */
export async function decodeImageRaw(input: ImageInput | Uint8Array, opts: Omit<DecodeOptions, 'alpha'>): Promise<RawImage> {
  const read = await readImageBytes(input, opts.maxInputBytes);
  const { label } = read;
  let bytes = read.bytes;

  if (isBmp(bytes)) {
    const bmp = decodeBmp(bytes, label, opts.maxInputPixels, opts.downscaleAbovePixels);
    return { width: bmp.width, height: bmp.height, channels: bmp.channels, data: bmp.data, ...(bmp.original ? { original: bmp.original } : {}) };
  }
  if (startsWith(bytes, [0x1f, 0x8b])) {
    // Gzipped SVG (svgz), which librsvg would otherwise inflate itself, past our SVG sanitising.
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: opts.maxInputBytes });
    } catch (err) {
      throw new InputError(`${label}: bad or oversized gzip data (${(err as Error).message})`);
    }
    if (!looksLikeSvg(bytes)) throw new InputError(`${label}: gzip-compressed data that is not an SVG image`);
  }
  let isSvg = false;
  if (!isKnownRaster(bytes) && looksLikeSvg(bytes)) {
    bytes = sanitizeSvg(bytes, label);
    isSvg = true;
  }

  const options: SharpOptions = {
    autoOrient: true,
    ignoreIcc: true,
    failOn: 'error',
    limitInputPixels: opts.maxInputPixels,
    pages: 1,
    page: 0,
  };
  try {
    // The header alone: the pixel limit is checked below, with the image's size in the message.
    const meta = await sharp(bytes, { ...options, limitInputPixels: false }).metadata();
    if (!SHARP_FORMATS.has(meta.format) || (meta.format === 'svg') !== isSvg) {
      throw new InputError(`${label}: unsupported image format "${meta.format}"`);
    }
    const width = meta.autoOrient?.width ?? meta.width;
    const height = meta.autoOrient?.height ?? meta.height;
    if (width * height > opts.maxInputPixels) throw tooManyPixels(label, { width, height }, opts.maxInputPixels);
    if (Math.max(width, height) > MAX_IMAGE_SIDE) throw tooLong(label, { width, height });
    const shrink = width * height > (opts.downscaleAbovePixels ?? DOWNSCALE_ABOVE_PIXELS) ? Math.min(1, Math.sqrt(DOWNSCALED_PIXELS / (width * height))) : 1;
    // PIL ignores ICC profiles, so RGB/grey values are taken as stored. CMYK has no such reference (PIL's own
    // conversion is naive), so there the embedded profile, or sharp's default CMYK profile, gives real colours.
    let pipeline = sharp(bytes, { ...options, ignoreIcc: meta.space !== 'cmyk', sequentialRead: shrink < 1 }).timeout({ seconds: 60 });
    if (shrink < 1) {
      pipeline = pipeline.resize({
        width: Math.max(1, Math.floor(width * shrink)),
        height: Math.max(1, Math.floor(height * shrink)),
        fit: 'fill',
        kernel: 'lanczos3',
      });
    }
    const { data, info } = await pipeline.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const raw: RawImage = { width: info.width, height: info.height, channels: info.channels, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    if (shrink < 1) raw.original = { width, height };
    const mode = pilNearestMode(meta);
    if (mode) raw.sourceMode = mode;
    return raw;
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw sharpError(err, label, opts.maxInputPixels);
  }
}
