import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

/**
 * Screenshot-like PNGs (window chrome, text-like rows of glyph blocks, a chart): vision time depends on the size
 * only, but a realistic picture keeps the PNG decode honest.
 */
export async function ensureScreenshot(dir: string, width: number, height: number): Promise<string> {
  const file = join(dir, `screenshot-${width}x${height}.png`);
  if (existsSync(file)) return file;
  await mkdir(dir, { recursive: true });
  const px = Buffer.alloc(width * height * 3, 255);
  const set = (x: number, y: number, r: number, g: number, b: number) => {
    const i = (y * width + x) * 3;
    px[i] = r;
    px[i + 1] = g;
    px[i + 2] = b;
  };
  const bar = Math.round(height / 20);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y < bar) set(x, y, 50, 60, 80); // title bar
      else if (x < width / 5) set(x, y, 235, 238, 242); // side panel
      else {
        // Text rows: glyph-sized dark blocks with gaps, lines 1/40 of the height apart.
        const line = Math.floor((y - bar) / Math.max(8, Math.round(height / 40)));
        const inGlyph = (Math.floor(x / 7) * 31 + line * 17) % 11 > 2 && (y - bar) % Math.max(8, Math.round(height / 40)) > 3;
        if (inGlyph && x < width * (0.6 + 0.3 * ((line * 7) % 5) / 5)) set(x, y, 30, 30, 30);
      }
    }
  }
  await sharp(px, { raw: { width, height, channels: 3 } }).png().toFile(file);
  return file;
}
