import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

/** SHA-256 (hex) of the float32 values as little-endian bytes, the layout NumPy writes for `<f4`. */
export function sha256OfFloat32(arr: Float32Array): string {
  let bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  if (endianness() === 'BE') {
    const le = new Uint8Array(arr.byteLength);
    const dv = new DataView(le.buffer);
    for (let i = 0; i < arr.length; i++) dv.setFloat32(i * 4, arr[i], true);
    bytes = le;
  }
  return createHash('sha256').update(bytes).digest('hex');
}
