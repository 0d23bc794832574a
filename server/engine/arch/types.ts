/**
 * What the engine core needs from an architecture: turning one image into the rows spliced at its placeholder, and
 * the prompt-id rules of its official code. The block-diffusion loop, KV cache, caches and cancellation are shared.
 */
import type { ImageInput } from '../api';
import type { AlphaMode } from '../image/decode';
import type { DiffusionParams } from '../blockDiffusion';

export interface ImageRequest {
  /** As requested; each architecture has its own default (see its adapter). */
  alpha?: AlphaMode;
  /** SigLIP only: `pad` or `anyres_max_N`, overriding the model's config for this request. */
  aspectRatio?: string;
  /** Images in the request (the official multi-image path differs). */
  imageCount: number;
}

export interface PreparedImage {
  /** Identity of what the vision graph will see (pixels and layout): the vision-cache key. */
  key: string;
  /** Runs the vision graph and returns the rows [n, hidden] spliced at the placeholder. */
  encode(check: () => void): Promise<Float32Array>;
}

export interface ArchAdapter {
  /** Decodes and preprocesses one image (cheap next to encode()). */
  prepareImage(image: ImageInput, req: ImageRequest): Promise<PreparedImage>;
  /** A string identifying the request options that change preprocessing (part of the file-level cache key). */
  imageOptionsKey(req: ImageRequest): string;
  /** The prompt ids as the official code splices them (e.g. ids it deletes on the image path). */
  promptIds(ids: number[], imageCount: number): number[];
  /** Rows the official code keeps of a spliced prompt with `imageCount` images (it truncates the rest), if limited. */
  promptRowLimit(imageCount: number): number | undefined;
  /** The image handling the official evaluation driver forces for a question with `imageCount` images, if any. */
  driverAspectRatio(imageCount: number): string | undefined;
  /** Where the architecture's generate loop differs from the shared one's defaults. */
  loop: Pick<DiffusionParams, 'fullDiffusionSchedule' | 'samplingConfidence'>;
}
