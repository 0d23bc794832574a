import { readFileSync } from 'node:fs';

/** Reads a little-endian float32, C-order NumPy .npy file (the format of the golden fixtures). */
export function readNpyF32(path: string): { shape: number[]; data: Float32Array } {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) throw new Error(`${path}: expected C-order <f4`);
  const m = /'shape': \(([^)]*)\)/.exec(header);
  if (!m) throw new Error(`${path}: no shape in header`);
  const shape = m[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const start = buf.byteOffset + 10 + headerLen;
  const data = new Float32Array(buf.buffer.slice(start, buf.byteOffset + buf.length));
  return { shape, data };
}

/** Largest |a − b| over equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
