import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DiffusionVLError } from './errors';
import { halfToFloat } from './half';

/**
 * Token embedding rows read on demand from `embeddings.bin` ([rows, cols], float32 or float16, row-major) with
 * positioned reads. The table (≈1 GB for 7B models) is never loaded: only the rows a prompt or a step needs.
 */
export class EmbeddingTable {
  readonly cols: number;
  private fd: number;
  private rowBytes: number;
  private scratch: Buffer;
  private cachedRows = new Map<number, Float32Array>();

  constructor(
    path: string,
    readonly rows: number,
    cols: number,
    private dtype: 'float32' | 'float16',
    /** Rows worth keeping (the MASK row is read for every masked position of every block). */
    keep: number[] = [],
  ) {
    this.cols = cols;
    this.rowBytes = cols * (dtype === 'float16' ? 2 : 4);
    try {
      this.fd = openSync(path, 'r');
    } catch (err) {
      throw new DiffusionVLError('model', `${path}: cannot open the embedding table (${(err as Error).message})`);
    }
    // The manifest's shape must match the file: a short table would fail in the middle of a run, a long one is not it.
    const size = fstatSync(this.fd).size;
    if (size !== rows * this.rowBytes) {
      closeSync(this.fd);
      throw new DiffusionVLError('model', `${path}: ${size} bytes, but the manifest says ${rows}×${cols} ${dtype} (${rows * this.rowBytes} bytes); truncated or not this model's table`);
    }
    this.scratch = Buffer.alloc(this.rowBytes);
    for (const id of keep) this.cachedRows.set(id, this.readRow(id));
  }

  /** Writes row `id` into `dst` at element offset `offset`. */
  copyRow(id: number, dst: Float32Array, offset: number): void {
    const cached = this.cachedRows.get(id);
    if (cached) {
      dst.set(cached, offset);
      return;
    }
    this.readInto(id);
    if (this.dtype === 'float16') {
      halfToFloat(new Uint16Array(this.scratch.buffer, this.scratch.byteOffset, this.cols), dst, offset);
    } else {
      dst.set(new Float32Array(this.scratch.buffer, this.scratch.byteOffset, this.cols), offset);
    }
  }

  readRow(id: number): Float32Array {
    const out = new Float32Array(this.cols);
    this.copyRow(id, out, 0);
    return out;
  }

  /** Embeds `ids` into a new [ids.length, cols] array. */
  embed(ids: ArrayLike<number>): Float32Array {
    const out = new Float32Array(ids.length * this.cols);
    for (let i = 0; i < ids.length; i++) this.copyRow(ids[i], out, i * this.cols);
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }

  private readInto(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.rows) throw new RangeError(`token id ${id} outside the embedding table (0..${this.rows - 1})`);
    // Scratch is 4-byte aligned (fresh Buffer.alloc), so the typed views above are valid.
    const n = readSync(this.fd, this.scratch, 0, this.rowBytes, id * this.rowBytes);
    if (n !== this.rowBytes) throw new Error(`embeddings: short read for row ${id}`);
  }
}
