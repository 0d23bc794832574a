import { closeSync, openSync, writeSync } from 'node:fs';
import { f32ToF16Array } from '../../engine/half';
import { GGML_TYPE, GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, ValueType, type WrittenTensorType } from '../../engine/backends/llamacpp/ggmlTypes';

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]'; value: ArrayLike<number> };

interface TensorEntry {
  name: string;
  /** ggml order: ne[0] is the innermost (contiguous) dimension, i.e. a PyTorch shape reversed. */
  ne: number[];
  type: WrittenTensorType;
  offset: number;
  bytes: number;
}

/** Appends little-endian values to a growing byte buffer (the header; tensor data never goes through it). */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.room(4);
    this.length = this.buf.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.room(4);
    this.length = this.buf.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.room(8);
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length);
  }
  f32(v: number): void {
    this.room(4);
    this.length = this.buf.writeFloatLE(v, this.length);
  }
  u8(v: number): void {
    this.room(1);
    this.length = this.buf.writeUInt8(v, this.length);
  }
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.room(n);
    this.length += this.buf.write(s, this.length, 'utf8');
  }
  zeros(n: number): void {
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

const align = (n: number): number => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/**
 * A GGUF v3 file written front to back: metadata and the list of tensors first (their sizes follow from their
 * shapes), then each tensor's data streamed in the declared order, so no more than one tensor is held at a time.
 */
export class GgufWriter {
  private readonly kv: [string, GgufValue][] = [];
  private readonly tensors: TensorEntry[] = [];
  private dataBytes = 0;
  private fd: number | undefined;
  private next = 0;

  constructor(private readonly path: string) {}

  set(key: string, value: GgufValue): void {
    if (this.fd !== undefined) throw new Error(`GGUF ${key}: metadata after the header was written`);
    if (this.kv.some(([k]) => k === key)) throw new Error(`GGUF ${key}: set twice`);
    this.kv.push([key, value]);
  }

  /** Declares a tensor; `shape` is the PyTorch (row-major, outermost first) shape. */
  addTensor(name: string, shape: readonly number[], type: WrittenTensorType): void {
    if (this.fd !== undefined) throw new Error(`GGUF tensor ${name}: declared after the header was written`);
    if (this.tensors.some((t) => t.name === name)) throw new Error(`GGUF tensor ${name}: declared twice`);
    const count = shape.reduce((a, b) => a * b, 1);
    const bytes = count * (type === 'F32' ? 4 : 2);
    this.tensors.push({ name, ne: [...shape].reverse(), type, offset: this.dataBytes, bytes });
    this.dataBytes = align(this.dataBytes + bytes);
  }

  /** Writes the header: magic, version, counts, metadata, tensor infos, padding to the data section. */
  writeHeader(): void {
    const b = new Bytes();
    b.u32(GGUF_MAGIC);
    b.u32(GGUF_VERSION);
    b.u64(this.tensors.length);
    b.u64(this.kv.length);
    for (const [key, v] of this.kv) {
      b.str(key);
      writeValue(b, v);
    }
    for (const t of this.tensors) {
      b.str(t.name);
      b.u32(t.ne.length);
      for (const d of t.ne) b.u64(d);
      b.u32(GGML_TYPE[t.type]);
      b.u64(t.offset);
    }
    b.zeros(align(b.length) - b.length);
    this.fd = openSync(this.path, 'w');
    this.put(b.view());
  }

  /** Writes the next declared tensor's data (float32 in, narrowed to the declared type a slab at a time). */
  writeTensor(name: string, data: Float32Array): void {
    if (this.fd === undefined) throw new Error('GGUF: writeHeader() first');
    const t = this.tensors[this.next];
    if (!t || t.name !== name) throw new Error(`GGUF: tensor ${name} written out of order (expected ${t?.name ?? 'none'})`);
    const count = t.bytes / (t.type === 'F32' ? 4 : 2);
    if (data.length !== count) throw new Error(`GGUF tensor ${name}: ${data.length} values for ${count} declared`);
    const slab = 1 << 20;
    for (let at = 0; at < data.length; at += slab) {
      const part = data.subarray(at, Math.min(data.length, at + slab));
      this.put(t.type === 'F32' ? new Uint8Array(part.buffer, part.byteOffset, part.byteLength) : new Uint8Array(f32ToF16Array(part).buffer));
    }
    const pad = align(t.bytes) - t.bytes;
    if (pad > 0) this.put(new Uint8Array(pad));
    this.next++;
  }

  /** Closes the file; throws when a declared tensor was never written. */
  finish(): void {
    if (this.fd === undefined) throw new Error('GGUF: nothing written');
    const missing = this.tensors.slice(this.next).map((t) => t.name);
    this.close();
    if (missing.length) throw new Error(`GGUF: ${missing.length} declared tensors not written (${missing.slice(0, 3).join(', ')}…)`);
  }

  /** Closes the file without checks (after a failure; the caller removes it). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private put(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd as number, bytes, done, bytes.length - done);
  }
}

function writeValue(b: Bytes, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
      b.u32(ValueType.UINT32);
      b.u32(v.value);
      return;
    case 'i32':
      b.u32(ValueType.INT32);
      b.i32(v.value);
      return;
    case 'f32':
      b.u32(ValueType.FLOAT32);
      b.f32(v.value);
      return;
    case 'bool':
      b.u32(ValueType.BOOL);
      b.u8(v.value ? 1 : 0);
      return;
    case 'string':
      b.u32(ValueType.STRING);
      b.str(v.value);
      return;
    case 'string[]':
      b.u32(ValueType.ARRAY);
      b.u32(ValueType.STRING);
      b.u64(v.value.length);
      for (const s of v.value) b.str(s);
      return;
    case 'i32[]':
      b.u32(ValueType.ARRAY);
      b.u32(ValueType.INT32);
      b.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) b.i32(v.value[i]);
      return;
  }
}
