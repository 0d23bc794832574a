import sharp from 'sharp';
import { IMAGE_SIZE } from './scenes';

/**
 * Rasterises a scene's SVG with sharp (librsvg) at its own pixel size (density 72 = one SVG unit per pixel). The
 * result is opaque RGB, so PNG round trips and the engine's decoder see exactly these bytes.
 */
export async function renderRgb(svg: string): Promise<Buffer> {
  const { data, info } = await sharp(Buffer.from(svg), { density: 72 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== IMAGE_SIZE || info.height !== IMAGE_SIZE || info.channels !== 3) {
    throw new Error(`rendered ${info.width}×${info.height}×${info.channels}, expected ${IMAGE_SIZE}×${IMAGE_SIZE}×3`);
  }
  return data;
}

/** PNG of the rasterised scene (deterministic encoder settings, so files are byte-stable). */
export async function renderPng(svg: string): Promise<Buffer> {
  const rgb = await renderRgb(svg);
  return sharp(rgb, { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 3 } })
    .png({ compressionLevel: 9, adaptiveFiltering: false, palette: false })
    .toBuffer();
}
