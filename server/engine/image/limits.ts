/**
 * The image limits, defined once. The engine's decoder enforces them; the sidecar checks a file's size (or a base64
 * payload's) against the same byte limit before reading it, and the extension before sending it.
 */

/** Largest encoded image accepted, in bytes. */
export const MAX_IMAGE_BYTES = 32 * 1024 * 1024;

/** Decompression-bomb guard: width·height above this is refused before decoding. */
export const MAX_IMAGE_PIXELS = 100_000_000;
