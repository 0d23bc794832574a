/**
 * 4-bit block quantisation in the layout of ONNX Runtime's com.microsoft MatMulNBits (bits 4, asymmetric):
 * per output row n and block of `blockSize` inputs, `w ≈ (q − zp) · scale` with q, zp ∈ [0, 15].
 *   B            uint8 [N, K/bs, bs/2]   two codes per byte, low nibble first, along K
 *   scales       float [N · K/bs]
 *   zero_points  uint8 [N · ceil((K/bs)/2)]   two zero points per byte, low nibble first
 */
export interface Int4Weight {
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
  blocksPerRow: number;
}

/** `w` is row-major [N, K] (Hugging Face [out, in] order). K must be a multiple of blockSize. */
export function quantizeInt4(w: Float32Array, n: number, k: number, blockSize = 32): Int4Weight {
  if (k % blockSize !== 0) throw new Error(`int4: K=${k} is not a multiple of the block size ${blockSize}`);
  const blocks = k / blockSize;
  const packed = new Uint8Array(n * blocks * (blockSize / 2));
  const scales = new Float32Array(n * blocks);
  const zpBytesPerRow = Math.ceil(blocks / 2);
  const zeroPoints = new Uint8Array(n * zpBytesPerRow);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const base = row * k + b * blockSize;
      // The range always includes 0 so that zero weights stay exactly zero.
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < blockSize; i++) {
        const v = w[base + i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const scale = (hi - lo) / 15;
      const zp = scale === 0 ? 8 : Math.min(15, Math.max(0, Math.round(-lo / scale)));
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[row * blocks + b] = scale === 0 ? 1 : scale;
      const zpIndex = row * zpBytesPerRow + (b >> 1);
      zeroPoints[zpIndex] |= b & 1 ? zp << 4 : zp;
      const out = (row * blocks + b) * (blockSize / 2);
      for (let i = 0; i < blockSize; i += 2) {
        const q0 = Math.min(15, Math.max(0, Math.round(w[base + i] * inv) + zp));
        const q1 = Math.min(15, Math.max(0, Math.round(w[base + i + 1] * inv) + zp));
        packed[out + (i >> 1)] = q0 | (q1 << 4);
      }
    }
  }
  return { packed, scales, zeroPoints, blocksPerRow: blocks };
}

/** The float weights an Int4Weight stands for (tests and error reports). */
export function dequantizeInt4(q: Int4Weight, n: number, k: number, blockSize = 32): Float32Array {
  const out = new Float32Array(n * k);
  const blocks = k / blockSize;
  const zpBytesPerRow = Math.ceil(blocks / 2);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const zpByte = q.zeroPoints[row * zpBytesPerRow + (b >> 1)];
      const zp = b & 1 ? zpByte >> 4 : zpByte & 15;
      const scale = q.scales[row * blocks + b];
      for (let i = 0; i < blockSize; i++) {
        const byte = q.packed[(row * blocks + b) * (blockSize / 2) + (i >> 1)];
        const code = i & 1 ? byte >> 4 : byte & 15;
        out[row * k + b * blockSize + i] = (code - zp) * scale;
      }
    }
  }
  return out;
}
