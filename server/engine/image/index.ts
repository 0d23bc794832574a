/**
 * Image input shared by every architecture: decoding (sharp, plus a small BMP reader), Pillow-exact bicubic
 * resampling, the input limits and the pixel-tensor hash. Each architecture's own preprocessing lives in
 * engine/arch/<name>/.
 */
export { sha256OfFloat32 } from './hash';
export { resizeBicubic, bicubicCoefficients, type RgbImage } from './pillowResize';
export { decodeImage, decodeImageRaw, type AlphaMode, type DecodeOptions, type RawImage } from './decode';
export { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from './limits';
