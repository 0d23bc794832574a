import sharp from 'sharp';
import type { ImageInput } from '../engine/api';
import { decodeImageRaw, readImageBytes } from '../engine/image/decode';
import { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../engine/image/limits';

/** Formats every OpenAI-compatible vision server takes as they are, by their leading bytes. */
function passThroughMime(b: Uint8Array): string | undefined {
  const at = (i: number, s: string): boolean => [...s].every((c, k) => b[i + k] === c.charCodeAt(0));
  if (b[0] === 0x89 && at(1, 'PNG')) return 'image/png';
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (at(0, 'GIF8')) return 'image/gif';
  if (at(0, 'RIFF') && at(8, 'WEBP')) return 'image/webp';
  return undefined;
}

/**
 * The image as a `data:` URL for an `image_url` part. PNG, JPEG, GIF and WebP go as they are; anything else the
 * local engine reads (SVG, BMP, TIFF, …) is decoded here under the engine's own limits and sanitising, and sent as
 * PNG, so that a remote server sees the same picture the local model would.
 */
export async function imageDataUrl(input: ImageInput): Promise<string> {
  const { bytes } = await readImageBytes(input, MAX_IMAGE_BYTES);
  const mime = passThroughMime(bytes);
  if (mime) return `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`;
  const raw = await decodeImageRaw(bytes, { maxInputPixels: MAX_IMAGE_PIXELS, maxInputBytes: MAX_IMAGE_BYTES });
  const channels = raw.channels as 1 | 2 | 3 | 4;
  const png = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels } }).png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}
