/**
 * Exact F16/BF16 ⇄ F32 conversions (Node 20 has no Float16Array): checkpoint reading and weight narrowing in the
 * converter, fp16 embedding rows and key/value tensors in the engine.
 */

/** float32 bit patterns of all 65536 halves: a table makes widening exact (subnormals, ±inf, NaN payloads) and fast. */
let f16Table: Uint32Array | undefined;

function halfTable(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) {
      f[0] = m * 2 ** -24; // subnormal (or zero): exactly representable in float32
      t[h] = (sign | u[0]) >>> 0;
    } else if (e === 31) {
      t[h] = (sign | 0x7f800000 | (m << 13)) >>> 0;
    } else {
      t[h] = (sign | ((e - 15 + 127) << 23) | (m << 13)) >>> 0;
    }
  }
  f16Table = t;
  return t;
}

function bitsView(dst: Float32Array): Uint32Array {
  return new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A 16-bit view of the bytes when alignment and endianness allow (twice as fast as byte loads). */
function halves(src: Uint8Array, n: number): Uint16Array | undefined {
  return LITTLE_ENDIAN && (src.byteOffset & 1) === 0 ? new Uint16Array(src.buffer, src.byteOffset, n) : undefined;
}

/** Widens `dst.length` little-endian halves from `src` into `dst`. */
export function f16ToF32Into(src: Uint8Array, dst: Float32Array): void {
  const t = halfTable();
  const out = bitsView(dst);
  const u16 = halves(src, out.length);
  if (u16) for (let i = 0; i < out.length; i++) out[i] = t[u16[i]];
  else for (let i = 0, j = 0; i < out.length; i++, j += 2) out[i] = t[src[j] | (src[j + 1] << 8)];
}

/** Widens float16 bits into `dst` starting at `offset`. */
export function halfToFloat(src: Uint16Array, dst: Float32Array, offset = 0): void {
  const t = halfTable();
  const out = bitsView(dst);
  for (let i = 0; i < src.length; i++) out[offset + i] = t[src[i]];
}

/** bfloat16 is the top half of a float32, so widening is a 16-bit shift. */
export function bf16ToF32Into(src: Uint8Array, dst: Float32Array): void {
  const out = bitsView(dst);
  const u16 = halves(src, out.length);
  if (u16) for (let i = 0; i < out.length; i++) out[i] = u16[i] << 16;
  else for (let i = 0, j = 0; i < out.length; i++, j += 2) out[i] = ((src[j] << 16) | (src[j + 1] << 24)) >>> 0;
}

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

/** float32 → IEEE half bits, round to nearest even (what numpy / torch do). */
export function f32ToF16Bits(value: number): number {
  scratchF[0] = value;
  const x = scratchU[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 | (m >>> 13) : 0); // inf, or a quiet NaN keeping high payload bits
  const he = e - 127 + 15;
  if (he >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (he <= 0) {
    if (he < -10) return sign; // underflows to zero even after rounding
    m |= 0x800000; // implicit bit
    const shift = 14 - he;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let hm = m >>> shift;
    if (rest > half || (rest === half && (hm & 1))) hm++;
    return sign | hm; // a carry into bit 10 correctly yields the smallest normal
  }
  let h = (he << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // a carry may roll into the exponent (→ inf): correct
  return sign | h;
}

/** float32 values → IEEE half bits (round to nearest even), as torch's `.half()` converts weights. */
export function f32ToF16Array(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

/** float32 → bfloat16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(value: number): number {
  scratchF[0] = value;
  const x = scratchU[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Narrows float32 values into little-endian half or bfloat16 bytes. */
export function f32ToHalfInto(src: Float32Array, dst: Uint8Array, dtype: 'F16' | 'BF16'): void {
  if (dtype === 'BF16') {
    // Inlined f32ToBf16Bits on a bit view: multi-GB benchmark checkpoints go through here.
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0, j = 0; i < bits.length; i++, j += 2) {
      const x = bits[i];
      const h = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
      dst[j] = h & 0xff;
      dst[j + 1] = (h >>> 8) & 0xff;
    }
    return;
  }
  const conv = f32ToF16Bits;
  for (let i = 0, j = 0; i < src.length; i++, j += 2) {
    const h = conv(src[i]);
    dst[j] = h & 0xff;
    dst[j + 1] = h >>> 8;
  }
}
