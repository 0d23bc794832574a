import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { endianness } from 'node:os';
import { bf16ToF32Into, f16ToF32Into } from '../engine/half';

/** The element types the converter can widen to float32. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

export interface TensorInfo {
  /** Name as stored in the file (the checkpoint maps it to a canonical name). */
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute path of the file holding the tensor. */
  file: string;
  /** Absolute byte offset of the first element in the file. */
  offset: number;
  byteLength: number;
}

/** A tensor whose dtype is valid safetensors but not one the converter reads (I8, F64, …). */
export interface UnsupportedTensor {
  name: string;
  dtype: string;
  shape: number[];
  file: string;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Byte offset where the data section starts (8 + header length). */
  dataStart: number;
  tensors: TensorInfo[];
  unsupported: UnsupportedTensor[];
  metadata: Record<string, string>;
}

/** Element sizes of every dtype the safetensors format defines; used to validate spans of all entries. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1, F4: 1, F6_E2M3: 1, F6_E3M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};
const SUPPORTED = new Set<string>(['F32', 'F16', 'BF16']);

/** Headers larger than this are corrupt (real ones are a few hundred KB at most). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function dtypeBytes(dtype: SafetensorsDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

export function isSupportedDtype(dtype: string): dtype is SafetensorsDtype {
  return SUPPORTED.has(dtype);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Reads and validates the header of one .safetensors file without touching its data section. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r').catch((err: Error) => {
    throw new Error(`${basename(path)}: cannot open (${err.message})`);
  });
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

async function readExactly(fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const name = basename(path);
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8) throw new Error(`${name}: truncated safetensors file (${fileSize} bytes, no header length)`);
  const lenBuf = Buffer.alloc(8);
  await readExactly(fh, lenBuf, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`${name}: header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes; not a safetensors file?`);
  }
  const n = Number(headerLen);
  if (8 + n > fileSize) {
    throw new Error(`${name}: header length ${n} runs past the end of the file (${fileSize} bytes); truncated?`);
  }
  const hb = Buffer.alloc(n);
  await readExactly(fh, hb, 8);
  let parsed: unknown;
  try {
    parsed = JSON.parse(hb.toString('utf8'));
  } catch (err) {
    throw new Error(`${name}: header is not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${name}: header is not a JSON object`);
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const tensors: TensorInfo[] = [];
  const unsupported: UnsupportedTensor[] = [];
  const spans: { name: string; begin: number; end: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) metadata = value as Record<string, string>;
      continue;
    }
    const where = `${name}: tensor ${key}`;
    if (value === null || typeof value !== 'object') throw new Error(`${where}: header entry is not an object`);
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string') throw new Error(`${where}: header entry has no dtype`);
    const size = DTYPE_BYTES[e.dtype];
    if (size === undefined) throw new Error(`${where} has unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${where}: shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new Error(`${where}: data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new Error(`${where}: data_offsets [${begin},${end}] end before they begin`);
    const expected = numel(shape) * size;
    if (end - begin !== expected) {
      throw new Error(
        `${where}: data_offsets [${begin},${end}] span ${end - begin} bytes, but shape ${fmtShape(shape)} × ${e.dtype} needs ${expected}`,
      );
    }
    if (end > dataSize) {
      throw new Error(
        `${where}: data ends at byte ${dataStart + end} but the file has only ${fileSize} bytes (truncated or corrupt offsets)`,
      );
    }
    spans.push({ name: key, begin, end });
    if (isSupportedDtype(e.dtype)) {
      tensors.push({ name: key, dtype: e.dtype, shape, file: path, offset: dataStart + begin, byteLength: expected });
    } else {
      unsupported.push({ name: key, dtype: e.dtype, shape, file: path });
    }
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    const cur = spans[i];
    // Empty tensors occupy no bytes, so they cannot overlap anything.
    if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin) {
      throw new Error(
        `${name}: tensor ${cur.name} (bytes ${cur.begin}..${cur.end}) overlaps tensor ${prev.name} (bytes ${prev.begin}..${prev.end})`,
      );
    }
  }
  return { file: path, fileSize, dataStart, tensors, unsupported, metadata };
}

/** Elements converted per read: bounds the scratch buffer for F16/BF16 and keeps reads large. */
const CHUNK_ELEMENTS = 4 << 20;
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * Reads one tensor from an open file handle as float32. F32 bytes land directly in the result; F16/BF16 go
 * through a bounded scratch buffer, so peak memory is the float32 result plus at most one chunk.
 */
/**
 * Shape-checked float32 reads over a checkpoint's files, with one read handle per file, opened on first use and
 * kept until `close()` (a conversion reads hundreds of tensors from a few shards). `label` names a tensor in errors.
 */
export function tensorReader(
  info: (name: string) => TensorInfo,
  label: (name: string, t: TensorInfo) => string = (_, t) => t.name,
): { readF32(name: string, expectShape?: number[]): Promise<Float32Array>; close(): Promise<void> } {
  const handles = new Map<string, Promise<FileHandle>>();
  const handle = (file: string): Promise<FileHandle> => {
    let h = handles.get(file);
    if (!h) {
      h = open(file, 'r');
      handles.set(file, h);
    }
    return h;
  };
  return {
    async readF32(name, expectShape) {
      const t = info(name);
      if (expectShape && (expectShape.length !== t.shape.length || expectShape.some((d, i) => d !== t.shape[i]))) {
        throw new Error(`${basename(t.file)}: tensor ${label(name, t)} has shape ${fmtShape(t.shape)}, expected ${fmtShape(expectShape)}`);
      }
      return readTensorF32(await handle(t.file), t);
    },
    async close() {
      const all = [...handles.values()];
      handles.clear();
      await Promise.all(all.map(async (p) => (await p).close()));
    },
  };
}

export async function readTensorF32(fh: FileHandle, info: TensorInfo): Promise<Float32Array> {
  const count = info.byteLength / dtypeBytes(info.dtype);
  const out = new Float32Array(count);
  const fail = (got: number, want: number): never => {
    throw new Error(`${basename(info.file)}: tensor ${info.name}: file ended after ${got} of ${want} bytes (truncated?)`);
  };
  if (info.dtype === 'F32' && LITTLE_ENDIAN) {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const step = CHUNK_ELEMENTS * 4;
    for (let pos = 0; pos < bytes.length; pos += step) {
      const view = Buffer.from(bytes.buffer, bytes.byteOffset + pos, Math.min(step, bytes.length - pos));
      const got = await readExactly(fh, view, info.offset + pos);
      if (got < view.length) fail(pos + got, info.byteLength);
    }
    return out;
  }
  const elemBytes = dtypeBytes(info.dtype);
  const scratch = Buffer.allocUnsafe(Math.min(count, CHUNK_ELEMENTS) * elemBytes);
  for (let start = 0; start < count; start += CHUNK_ELEMENTS) {
    const len = Math.min(CHUNK_ELEMENTS, count - start);
    const view = scratch.subarray(0, len * elemBytes);
    const got = await readExactly(fh, view, info.offset + start * elemBytes);
    if (got < view.length) fail(start * elemBytes + got, info.byteLength);
    const dst = out.subarray(start, start + len);
    if (info.dtype === 'F32') {
      for (let i = 0; i < len; i++) dst[i] = view.readFloatLE(i * 4);
    } else if (info.dtype === 'F16') {
      f16ToF32Into(view, dst);
    } else {
      bf16ToF32Into(view, dst);
    }
  }
  return out;
}

/** Reads a tensor's raw little-endian bytes (for callers that keep the source dtype). */
export async function readTensorBytes(fh: FileHandle, info: TensorInfo): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(info.byteLength);
  const got = await readExactly(fh, buf, info.offset);
  if (got < buf.length) {
    throw new Error(`${basename(info.file)}: tensor ${info.name}: file ended after ${got} of ${info.byteLength} bytes (truncated?)`);
  }
  return buf;
}

export { fmtShape, numel };
