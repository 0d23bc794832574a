import { QWEN_IMAGE_DEFAULTS, MAX_IMAGE_PIXELS, preprocessImage, sha256OfFloat32 } from '../../engine/image';
import { intFlag, parse, UsageError, type Command } from '../command';

const usage = `Usage: diffusionvl inspect-image <image> [options]

Preprocesses an image exactly as the model would (decode, Qwen2-VL smart_resize, Pillow-exact bicubic resize,
normalise, 2×2-merge-unit patches) and reports the patch grid and a SHA-256 of pixel_values.

Options:
  --min-pixels N        lower bound on the resized pixel count (default ${QWEN_IMAGE_DEFAULTS.minPixels})
  --max-pixels N        upper bound on the resized pixel count (default ${QWEN_IMAGE_DEFAULTS.maxPixels})
  --alpha white|drop    composite transparency over white (default), or drop alpha as the official processor does
  --max-input-pixels N  refuse images with more pixels than this (default ${MAX_IMAGE_PIXELS})
  --json                print one line: {"image_grid_thw":[t,h,w],"pixel_values_sha256":"<hex>"}`;

function positive(value: string | undefined, name: string, fallback: number): number {
  const n = intFlag(value, name, fallback);
  if (n <= 0) throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

export const inspectImageCommand: Command = {
  name: 'inspect-image',
  summary: 'Show how an image is preprocessed: patch grid and pixel_values SHA-256',
  usage,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parse(argv, {
      'min-pixels': { type: 'string' },
      'max-pixels': { type: 'string' },
      'max-input-pixels': { type: 'string' },
      alpha: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError(`inspect-image takes one image path\n\n${usage}`);
    const alpha = values.alpha ?? 'white';
    if (alpha !== 'white' && alpha !== 'drop') throw new UsageError(`--alpha must be "white" or "drop", got "${alpha}"`);
    const minPixels = positive(values['min-pixels'], 'min-pixels', QWEN_IMAGE_DEFAULTS.minPixels);
    const maxPixels = positive(values['max-pixels'], 'max-pixels', QWEN_IMAGE_DEFAULTS.maxPixels);
    if (minPixels > maxPixels) throw new UsageError(`--min-pixels (${minPixels}) is larger than --max-pixels (${maxPixels})`);
    const maxInputPixels = positive(values['max-input-pixels'], 'max-input-pixels', MAX_IMAGE_PIXELS);

    const path = positionals[0];
    const r = await preprocessImage({ path }, { ...QWEN_IMAGE_DEFAULTS, minPixels, maxPixels, alpha, maxInputPixels });
    const sha = sha256OfFloat32(r.pixelValues);
    if (values.json) {
      // A contract with outside checks: exactly these keys, in this order, on one line.
      console.log(JSON.stringify({ image_grid_thw: r.gridThw, pixel_values_sha256: sha }));
      return 0;
    }
    const [t, gh, gw] = r.gridThw;
    const rows = t * gh * gw;
    const cols = r.pixelValues.length / rows;
    const merge = QWEN_IMAGE_DEFAULTS.mergeSize;
    console.log(
      [
        `image:          ${path}`,
        `original:       ${r.original.width}×${r.original.height} (after EXIF orientation)`,
        `resized:        ${r.resized.width}×${r.resized.height} (bounds ${minPixels}..${maxPixels} pixels, alpha ${alpha})`,
        `image_grid_thw: [${t}, ${gh}, ${gw}]`,
        `patches:        ${rows} → ${rows / (merge * merge)} merged visual tokens`,
        `pixel_values:   float32 [${rows}, ${cols}], sha256 ${sha}`,
      ].join('\n'),
    );
    return 0;
  },
};
