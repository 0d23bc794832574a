import { MAX_IMAGE_PIXELS, sha256OfFloat32 } from '../../engine/image';
import { QWEN_IMAGE_DEFAULTS, preprocessImage } from '../../engine/arch/qwenvl/preprocess';
import { checkAspectRatio, preprocessSiglip } from '../../engine/arch/siglip';
import { readManifest } from '../../engine/manifest';
import { InputError } from '../../engine/api';
import { intFlag, parse, UsageError, type Command } from '../command';

const usage = `Usage: diffusionvl inspect-image <image> [options]

Preprocesses an image exactly as the model would (decode, Qwen2-VL smart_resize, Pillow-exact bicubic resize,
normalise, 2×2-merge-unit patches) and reports the patch grid and a SHA-256 of pixel_values.

Options:
  --min-pixels N        lower bound on the resized pixel count (default ${QWEN_IMAGE_DEFAULTS.minPixels})
  --max-pixels N        upper bound on the resized pixel count (default ${QWEN_IMAGE_DEFAULTS.maxPixels})
  --alpha white|drop    composite transparency over white (default), or drop alpha as the official processor does
  --max-input-pixels N  refuse images with more pixels than this (default ${MAX_IMAGE_PIXELS})
  --model DIR           preprocess for this converted model; for the SigLIP model (anyres tiling) --json prints
                        {"grid_rows_cols":[r,c],"num_views":V,"pixel_values_sha256":"<hex>"} (float32 [1,V,3,384,384])
  --image-aspect-ratio pad|anyres_max_N   SigLIP model: override its config
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
      model: { type: 'string' },
      'image-aspect-ratio': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError(`inspect-image takes one image path\n\n${usage}`);
    if (values.alpha !== undefined && values.alpha !== 'white' && values.alpha !== 'drop') throw new UsageError(`--alpha must be "white" or "drop", got "${values.alpha}"`);
    const manifest = values.model ? readManifest(values.model) : undefined;
    if (manifest?.architecture === 'diffusionvl_qwen') {
      let aspect: string;
      try {
        aspect = checkAspectRatio(values['image-aspect-ratio'] ?? manifest.image.aspectRatio);
      } catch (err) {
        throw new UsageError(err instanceof InputError ? err.message : String(err));
      }
      const r = await preprocessSiglip({ path: positionals[0] }, manifest, aspect, values.alpha === 'white' ? 'white' : 'drop');
      const sha = sha256OfFloat32(r.pixelValues);
      if (values.json) {
        // A contract with outside checks: exactly these keys, in this order, on one line.
        console.log(JSON.stringify({ grid_rows_cols: r.grid, num_views: r.views.length, pixel_values_sha256: sha }));
      } else {
        console.log(
          [
            `image:          ${positionals[0]}`,
            `original:       ${r.original.width}×${r.original.height}`,
            `mode:           ${aspect} (${r.mode === 'pad' ? 'one grey-padded square view' : 'base view + tiles'})`,
            `grid_rows_cols: [${r.grid.join(', ')}]`,
            `pixel_values:   float32 [1, ${r.views.length}, 3, ${manifest.vision.imageSize}, ${manifest.vision.imageSize}], sha256 ${sha}`,
          ].join('\n'),
        );
      }
      return 0;
    }
    if (values['image-aspect-ratio'] !== undefined) throw new UsageError('--image-aspect-ratio applies to the SigLIP model only (pass its --model)');
    const alpha = values.alpha ?? 'white';
    const bounds = manifest?.image ?? QWEN_IMAGE_DEFAULTS;
    const minPixels = positive(values['min-pixels'], 'min-pixels', bounds.minPixels);
    const maxPixels = positive(values['max-pixels'], 'max-pixels', bounds.maxPixels);
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
