import type { KvArray, KvCache } from './kvCache';

/** What the block-diffusion loop needs from a model; the ONNX implementation lives in ortModel.ts. */
export interface DecoderOutput {
  /** [rows, hidden] after the final norm. */
  hidden: Float32Array;
  /** Present only when requested: [rows, kvHeads·headDim] per layer. */
  newKeys?: KvArray[];
  newValues?: KvArray[];
}

export interface HeadOutput {
  /** Arg-max id per row (first index on ties). */
  ids: Int32Array;
  /** float32 softmax probability of that id. */
  probs: Float32Array;
  /** [rows, vocab], only when requested (sampling). */
  logits?: Float32Array;
}

export interface DiffusionModel {
  readonly hiddenSize: number;
  /**
   * One decoder pass over `embeds` ([positions.length, hidden]) at absolute `positions`, attending to the first
   * `cache.length` cached positions (none when `cache` is null) and to itself through the additive `mask`.
   */
  decode(embeds: Float32Array, positions: number[], mask: Float32Array, cache: KvCache | null, wantKv: boolean): Promise<DecoderOutput>;
  head(hidden: Float32Array, wantLogits: boolean): Promise<HeadOutput>;
  /** Writes the embedding row of `id` into `dst` at `offset`. */
  embedRow(id: number, dst: Float32Array, offset: number): void;
}
