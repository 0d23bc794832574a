import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A small GGUF (v3) reader for tests: the metadata, the tensor list and F32/F16 tensor data, read independently of
 * the writer so a file that only the writer understands fails.
 */
export type GgufMeta = number | bigint | boolean | string | GgufMeta[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order (innermost first). */
  ne: number[];
  type: number;
  offset: number;
}

export interface GgufFile {
  version: number;
  meta: Map<string, GgufMeta>;
  tensors: GgufTensorInfo[];
  dataStart: number;
  path: string;
}

class Cursor {
  at = 0;
  constructor(private readonly b: Buffer) {}
  u8(): number {
    return this.b.readUInt8(this.at++);
  }
  u32(): number {
    const v = this.b.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  u64(): number {
    const v = this.b.readBigUInt64LE(this.at);
    this.at += 8;
    return Number(v);
  }
  str(): string {
    const n = this.u64();
    const s = this.b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  value(type: number): GgufMeta {
    const b = this.b;
    const take = <T>(n: number, read: () => T): T => {
      const v = read();
      this.at += n;
      return v;
    };
    switch (type) {
      case 0: return this.u8();
      case 1: return take(1, () => b.readInt8(this.at));
      case 2: return take(2, () => b.readUInt16LE(this.at));
      case 3: return take(2, () => b.readInt16LE(this.at));
      case 4: return this.u32();
      case 5: return take(4, () => b.readInt32LE(this.at));
      case 6: return take(4, () => b.readFloatLE(this.at));
      case 7: return this.u8() !== 0;
      case 8: return this.str();
      case 9: {
        const elem = this.u32();
        const n = this.u64();
        const out: GgufMeta[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(elem));
        return out;
      }
      case 10: return take(8, () => b.readBigUInt64LE(this.at));
      case 11: return take(8, () => b.readBigInt64LE(this.at));
      case 12: return take(8, () => b.readDoubleLE(this.at));
      default: throw new Error(`GGUF value type ${type} unknown`);
    }
  }
}

/** Reads the header (the whole file is not loaded; `headerBytes` must cover the header). */
export function readGguf(path: string, headerBytes = 64 << 20): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(headerBytes);
    const n = readSync(fd, buf, 0, headerBytes, 0);
    const c = new Cursor(buf.subarray(0, n));
    if (c.u32() !== 0x46554747) throw new Error(`${path}: not a GGUF file`);
    const version = c.u32();
    const nTensors = c.u64();
    const nKv = c.u64();
    const meta = new Map<string, GgufMeta>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str();
      meta.set(key, c.value(c.u32()));
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.str();
      const dims = c.u32();
      const ne = Array.from({ length: dims }, () => c.u64());
      tensors.push({ name, ne, type: c.u32(), offset: c.u64() });
    }
    const alignment = Number(meta.get('general.alignment') ?? 32);
    return { version, meta, tensors, dataStart: Math.ceil(c.at / alignment) * alignment, path };
  } finally {
    closeSync(fd);
  }
}

/** One F32 (type 0) or F16 (type 1) tensor's values as float32. */
export function readGgufTensor(f: GgufFile, name: string): Float32Array {
  const t = f.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${f.path}: no tensor ${name}`);
  const count = t.ne.reduce((a, b) => a * b, 1);
  if (t.type !== 0 && t.type !== 1) throw new Error(`${name}: type ${t.type} is neither F32 nor F16`);
  const bytes = Buffer.alloc(count * (t.type === 0 ? 4 : 2));
  const fd = openSync(f.path, 'r');
  try {
    readSync(fd, bytes, 0, bytes.length, f.dataStart + t.offset);
  } finally {
    closeSync(fd);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = t.type === 0 ? bytes.readFloatLE(4 * i) : halfToFloat(bytes.readUInt16LE(2 * i));
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
