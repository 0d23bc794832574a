import type { KvCache } from './kvCache';

/**
 * Decoder output rows, opaque to the loop: host memory on the CPU, a device buffer on WebGPU (where they go from the
 * decoder to the head without leaving the GPU). Only `head` reads them.
 */
export interface HiddenRows {
  readonly rows: number;
}

export interface HeadOutput {
  /** Arg-max id per row (first index on ties). */
  ids: Int32Array;
  /** float32 softmax probability of that id. */
  probs: Float32Array;
  /** [rows, vocab], only when requested (sampling). */
  logits?: Float32Array;
}

export interface DecodeRequest {
  /** Append the K/V of the first `commitRows` rows to the cache after the pass (0: the cache is left alone). */
  commitRows: number;
  /** Return the hidden rows (for the head); a pure commit or prefill pass does not need them. */
  hidden: boolean;
}

/** What the block-diffusion loop needs from a model; the ONNX implementation lives in ortModel.ts. */
export interface DiffusionModel {
  readonly hiddenSize: number;
  /**
   * One decoder pass over `embeds` ([positions.length, hidden]) at absolute `positions`, attending to the first
   * `cache.length` cached positions (none when `cache` is null) and to itself through the additive `mask`.
   */
  decode(embeds: Float32Array, positions: number[], mask: Float32Array, cache: KvCache | null, req: DecodeRequest): Promise<HiddenRows | null>;
  /** Arg-max ids and probabilities (and logits when wanted) of rows [fromRow, rows); the rows are consumed. */
  head(hidden: HiddenRows, fromRow: number, wantLogits: boolean): Promise<HeadOutput>;
  /** Writes the embedding row of `id` into `dst` at `offset`. */
  embedRow(id: number, dst: Float32Array, offset: number): void;
}
