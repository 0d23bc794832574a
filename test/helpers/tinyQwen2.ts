import type { QwenVLTextConfig } from '../../server/converter/checkpointConfig';

/** A 2-layer Qwen2 of tiny widths (hidden 64, 4 heads of 16, vocab 465: the default model's tokenizer). */
export function tinyText(): QwenVLTextConfig {
  return { vocabSize: 465, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true };
}

/** Deterministic small weights for any tensor (xorshift). */
export function randomSource(): { readF32(name: string, shape?: number[]): Promise<Float32Array> } {
  return {
    readF32(_name: string, shape?: number[]): Promise<Float32Array> {
      const n = (shape ?? [1]).reduce((a, b) => a * b, 1);
      const x = new Float32Array(n);
      let s = 0x9e3779b9 ^ n;
      for (let i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        x[i] = ((s >>> 0) / 2 ** 32 - 0.5) * 0.1;
      }
      return Promise.resolve(x);
    },
  };
}
