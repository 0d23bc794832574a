/**
 * The image limits, defined once. The engine's decoder enforces them; the sidecar checks a file's size (or a base64
 * payload's) against the same byte limit before reading it, and the extension before sending it.
 */

/** Largest encoded image accepted, in bytes. */
export const MAX_IMAGE_BYTES = 32 * 1024 * 1024;

/**
 * Decompression-bomb guard: width·height above this is refused before decoding. Generous on purpose: large
 * legitimate images (panoramas, scans, 100+ MP camera files) are decoded, shrunk while they decode (below), in
 * bounded memory; only images declaring more pixels than this are refused.
 */
export const MAX_IMAGE_PIXELS = 200_000_000;

/**
 * Longest side accepted, in pixels (JPEG's own limit). Within the pixel limit a side can still be absurd: a 96-byte PNG
 * declaring 25 million × 3 pixels took libvips 20 s and 4 GB before it failed; nothing real is that thin.
 */
export const MAX_IMAGE_SIDE = 65_535;

/**
 * Above this many pixels the decoder shrinks the image as it reads it (libvips streams the rows through the resize;
 * JPEG and WebP shrink on load), to at most {@link DOWNSCALED_PIXELS}. The model sees at most a few hundred thousand
 * pixels, so nothing it could use is lost; smaller images decode at full size, exactly as the reference processor.
 */
export const DOWNSCALE_ABOVE_PIXELS = 50_000_000;
export const DOWNSCALED_PIXELS = 16_000_000;
