import { preprocessImage, QWEN_IMAGE_DEFAULTS } from '../../../server/engine/arch/qwenvl/preprocess';
import { preprocessSiglip } from '../../../server/engine/arch/siglip';
import { expectRefusal, invariant, type FuzzTarget } from '../target';

/** Pinpoints of a small anyres grid (the real list has 36; three keep each input fast while exercising the tiling). */
const SIGLIP = {
  image: { aspectRatio: 'anyres_max_4', gridPinpoints: [[384, 384], [384, 768], [768, 384]] as [number, number][], mergeType: 'spatial_unpad' as const, newlineFile: 'image_newline.bin' },
  vision: { numLayers: 1, hiddenSize: 32, numHeads: 2, headDim: 16, intermediateSize: 64, layerNormEps: 1e-6, patchSize: 14, imageSize: 384, outHiddenSize: 32 },
};

/**
 * Input: an encoded image (PNG, JPEG, GIF, WebP, TIFF, AVIF, BMP, SVG, anything), through the whole preprocessing a
 * question runs: the byte and pixel limits, sharp's decode (or our BMP reader), then the QwenVL smart resize and
 * patches, or the SigLIP pad view or anyres tiling (chosen by the input's length, so every input takes one path).
 */
export const target: FuzzTarget = {
  maxLength: 64 * 1024,
  dictionary: ['\x89PNG\r\n\x1a\n', 'IHDR', 'IDAT', 'IEND', 'PLTE', 'tRNS', 'acTL', '\xff\xd8\xff', 'GIF89a', 'RIFF', 'WEBPVP8', 'II*\x00', 'MM\x00*', 'ftypavif', 'BM', '<svg', 'exif', 'Exif\x00\x00', 'iCCP'],
  async fuzz(data) {
    try {
      const path = data.length % 3;
      if (path === 0) {
        const pre = await preprocessImage(data, { ...QWEN_IMAGE_DEFAULTS, minPixels: 56 * 56, maxPixels: 224 * 224 });
        invariant(pre.pixelValues.every(Number.isFinite), 'a pixel value is not finite');
        invariant(pre.resized.width % 28 === 0 && pre.resized.height % 28 === 0, `resized to ${pre.resized.width}×${pre.resized.height}`);
      } else {
        const pre = await preprocessSiglip(data, SIGLIP, path === 1 ? 'pad' : 'anyres_max_4', data.length % 2 ? 'white' : 'drop');
        invariant(pre.pixelValues.length === pre.views.length * 3 * 384 * 384, `${pre.pixelValues.length} values for ${pre.views.length} views`);
        invariant(pre.pixelValues.every(Number.isFinite), 'a pixel value is not finite');
      }
    } catch (err) {
      expectRefusal(err, { kinds: ['image'] });
    }
  },
};
