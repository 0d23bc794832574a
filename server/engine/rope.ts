/**
 * Text RoPE tables as the reference computes them: inv_freq in float32, θ = fround(pos · inv_freq) (an exact
 * float32 product, never a TF32 matmul), cos/sin of that float32 angle rounded to float32, duplicated over the two
 * halves of the head dimension.
 */
export function ropeInvFreq(headDim: number, theta: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(2 * i) / headDim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, exponent)));
  }
  return inv;
}

/** cos/sin [positions.length, headDim] for arbitrary (not necessarily contiguous) absolute positions. */
export function ropeTables(positions: ArrayLike<number>, invFreq: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const d = half * 2;
  const cos = new Float32Array(positions.length * d);
  const sin = new Float32Array(positions.length * d);
  for (let r = 0; r < positions.length; r++) {
    const pos = Math.fround(positions[r]);
    const base = r * d;
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * invFreq[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[base + i] = c;
      cos[base + half + i] = c;
      sin[base + i] = s;
      sin[base + half + i] = s;
    }
  }
  return { cos, sin };
}

/** Positions [start, end). */
export function range(start: number, end: number): number[] {
  const out: number[] = [];
  for (let p = start; p < end; p++) out.push(p);
  return out;
}
