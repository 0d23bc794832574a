import { open } from 'node:fs/promises';
import { f32ToHalfInto } from '../../../server/engine/half';
import { pyJsonDumps, type PyJson } from './pyJson';
import { dtypeBytes, numel, type SafetensorsDtype } from '../../../server/converter/safetensors';

/** A tensor to write, produced chunk by chunk so that multi-GB tensors never sit in memory whole. */
export interface TensorSource {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Called once, when the tensor's bytes are due; the filler then writes successive C-order chunks. */
  open(): (chunk: Float32Array, start: number) => void;
}

const CHUNK = 1 << 20;

/**
 * The header bytes Python's `json.dumps(header, separators=(",", ":"), sort_keys=True)` gives, space-padded to a
 * multiple of 8; data follow in sorted-name order. Byte-identical to the reference generator's writer.
 */
export function safetensorsHeader(tensors: readonly TensorSource[], metadata: Record<string, string>): { header: Buffer; order: TensorSource[] } {
  const order = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const obj: { [k: string]: PyJson } = {};
  let offset = 0;
  for (const t of order) {
    if (t.name in obj) throw new Error(`safetensors writer: duplicate tensor ${t.name}`);
    const bytes = numel(t.shape) * dtypeBytes(t.dtype);
    obj[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  obj.__metadata__ = metadata;
  const json = pyJsonDumps(obj);
  const padded = json + ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  return { header: Buffer.from(padded, 'utf8'), order };
}

export async function writeSafetensors(
  path: string,
  tensors: readonly TensorSource[],
  metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  const { header, order } = safetensorsHeader(tensors, metadata);
  const fh = await open(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    await fh.write(len);
    await fh.write(header);
    const chunk = new Float32Array(CHUNK);
    const half = Buffer.allocUnsafe(CHUNK * 2);
    for (const t of order) {
      const total = numel(t.shape);
      const fill = t.open();
      for (let start = 0; start < total; start += CHUNK) {
        const n = Math.min(CHUNK, total - start);
        const part = chunk.subarray(0, n);
        fill(part, start);
        if (t.dtype === 'F32') {
          await fh.write(new Uint8Array(part.buffer, part.byteOffset, part.byteLength)); // little-endian hosts only
        } else {
          const bytes = half.subarray(0, n * 2);
          f32ToHalfInto(part, bytes, t.dtype);
          await fh.write(bytes);
        }
      }
    }
  } finally {
    await fh.close();
  }
}
