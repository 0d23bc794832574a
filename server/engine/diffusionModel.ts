import type { AttentionPattern } from './attention';
import type { KvCache } from './kvCache';

/**
 * The head's input for the rows a pass was asked to output, opaque to the loop: hidden rows in host memory on the
 * CPU, a device buffer on WebGPU (they go from decoder to head without leaving the GPU), the library's own logits on
 * llama.cpp (its head runs inside the decoder pass). Only `head` reads them.
 */
export interface HiddenRows {
  /** How many rows `head` will return: the pass's `outputRows`. */
  readonly rows: number;
}

export interface HeadOutput {
  /** Arg-max id per output row (first index on ties). */
  ids: Int32Array;
  /** float32 softmax probability of that id. */
  probs: Float32Array;
  /** [rows, vocab], only when requested (sampling). */
  logits?: Float32Array;
}

export interface DecodeRequest {
  /** Append the K/V of the first `commitRows` rows to the cache after the pass (0: the cache is left alone). */
  commitRows: number;
  /**
   * Rows of the pass (ascending indices) whose head outputs are wanted; empty for a pure commit or prefill. Asking
   * only for the rows still masked is exact and saves the head on the others (a large share of a CPU forward).
   */
  outputRows: readonly number[];
}

/**
 * What the block-diffusion loop needs from a decoder backend (backends/onnx, backends/llamacpp). The vision tower
 * stays on ONNX Runtime whatever the decoder; its rows reach the decoder as embeddings.
 */
export interface DiffusionModel {
  readonly hiddenSize: number;
  /**
   * One decoder pass over `embeds` ([positions.length, hidden]) at absolute `positions`, attending to the first
   * `cache.length` cached positions (none when `cache` is null) and among its rows as `pattern` says. Returns the
   * head's input for `req.outputRows` (null when none are asked for).
   */
  decode(embeds: Float32Array, positions: number[], pattern: AttentionPattern, cache: KvCache | null, req: DecodeRequest): Promise<HiddenRows | null>;
  /** Arg-max ids and probabilities (and logits when wanted) of the pass's output rows, in their order; consumes them. */
  head(hidden: HiddenRows, wantLogits: boolean): Promise<HeadOutput>;
  /** Writes the embedding row of `id` into `dst` at `offset`. */
  embedRow(id: number, dst: Float32Array, offset: number): void;
}
