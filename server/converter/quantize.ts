/**
 * 4-bit block quantisation in the layout of ONNX Runtime's com.microsoft MatMulNBits (bits 4): per output row n and
 * block of `blockSize` inputs, `w ≈ (q − zp) · scale` with q ∈ [0, 15].
 *   B            uint8 [N, ceil(K/bs), bs/2]   two codes per byte, low nibble first, along K (a last partial block
 *                                              is zero-padded, as MatMulNBits expects)
 *   scales       float [N · ceil(K/bs)]
 *   zero_points  uint8 [N · ceil(ceil(K/bs)/2)]   asymmetric only: two zero points per byte, low nibble first.
 *                                              Symmetric weights have none (MatMulNBits then uses 8 for all).
 */
export interface Int4Weight {
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Uint8Array;
  blocksPerRow: number;
}

export interface Int4Layout {
  blockSize: number;
  /** Symmetric: zero point 8 everywhere, scale from the block's largest magnitude (llama.cpp's Q4_0 rule). */
  symmetric: boolean;
}

const ASYMMETRIC_32: Int4Layout = { blockSize: 32, symmetric: false };

/** `w` is row-major [N, K] (Hugging Face [out, in] order). */
export function quantizeInt4(w: Float32Array, n: number, k: number, layout: Int4Layout = ASYMMETRIC_32): Int4Weight {
  const { blockSize, symmetric } = layout;
  if (blockSize < 16 || blockSize % 16 !== 0) throw new Error(`int4: block size ${blockSize} is not a multiple of 16`);
  const blocks = Math.ceil(k / blockSize);
  const packed = new Uint8Array(n * blocks * (blockSize / 2));
  const scales = new Float32Array(n * blocks);
  const zpBytesPerRow = Math.ceil(blocks / 2);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * zpBytesPerRow);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const base = row * k + b * blockSize;
      const len = Math.min(blockSize, k - b * blockSize);
      let scale: number;
      let zp: number;
      if (symmetric) {
        // The value of largest magnitude maps to code 0 (−8·scale); the other side reaches +7·scale.
        let extreme = 0;
        for (let i = 0; i < len; i++) if (Math.abs(w[base + i]) > Math.abs(extreme)) extreme = w[base + i];
        scale = extreme / -8;
        zp = 8;
      } else {
        // The range always includes 0 so that zero weights stay exactly zero.
        let lo = 0;
        let hi = 0;
        for (let i = 0; i < len; i++) {
          const v = w[base + i];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        scale = (hi - lo) / 15;
        zp = scale === 0 ? 8 : Math.min(15, Math.max(0, Math.round(-lo / scale)));
        zeroPoints![row * zpBytesPerRow + (b >> 1)] |= b & 1 ? zp << 4 : zp;
      }
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[row * blocks + b] = scale === 0 ? 1 : scale;
      const code = (i: number) => (i < len ? Math.min(15, Math.max(0, Math.round(w[base + i] * inv) + zp)) : zp);
      const out = (row * blocks + b) * (blockSize / 2);
      for (let i = 0; i < blockSize; i += 2) packed[out + (i >> 1)] = code(i) | (code(i + 1) << 4);
    }
  }
  return { packed, scales, zeroPoints, blocksPerRow: blocks };
}

/** The float weights an Int4Weight stands for (tests and error reports). */
export function dequantizeInt4(q: Int4Weight, n: number, k: number, blockSize = 32): Float32Array {
  const out = new Float32Array(n * k);
  const blocks = Math.ceil(k / blockSize);
  const zpBytesPerRow = Math.ceil(blocks / 2);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const zpByte = q.zeroPoints ? q.zeroPoints[row * zpBytesPerRow + (b >> 1)] : 0x88;
      const zp = b & 1 ? zpByte >> 4 : zpByte & 15;
      const scale = q.scales[row * blocks + b];
      for (let i = 0; i < Math.min(blockSize, k - b * blockSize); i++) {
        const byte = q.packed[(row * blocks + b) * (blockSize / 2) + (i >> 1)];
        const code = i & 1 ? byte >> 4 : byte & 15;
        out[row * k + b * blockSize + i] = (code - zp) * scale;
      }
    }
  }
  return out;
}
