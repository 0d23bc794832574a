/**
 * Reads and checks a GGUF file's header before llama.cpp sees it. The library refuses most damaged files by returning
 * no model, but some it aborts on (GGML_ASSERT: a `block_count` of 0 or over 512 takes the whole process down), so a
 * file is handed to it only when its structure is sound — magic, version, counts that fit the file, known value and
 * tensor types, tensor infos whose data lies inside the file where the format puts it — and its decoder dimensions
 * are those of the model folder's manifest. Every refusal is a `model` error naming the file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DiffusionVLError } from '../../errors';
import type { TextDims } from '../../manifest';
import { GGML_TYPE_LAYOUT, GGUF_ALIGNMENT, GGUF_MAGIC, ValueType, VALUE_TYPE_BYTES } from './ggmlTypes';

/** llama.cpp's own limits (ggml.h, llama-hparams.h): dimensions per tensor, name length with its NUL, layers. */
const GGML_MAX_DIMS = 4;
const GGML_MAX_NAME = 64;
const LLAMA_MAX_LAYERS = 512;
/** The format's key length limit (the GGUF spec); string values longer than this are skipped, not kept. */
const MAX_KEY_BYTES = 65_535;
const KEPT_STRING_BYTES = 1024;

/** A metadata value as kept: scalars and short strings; arrays and long strings by their type and length only. */
export type GgufCheckedValue = number | bigint | boolean | string | { array: number; length: number } | { longString: number };

export interface GgufCheckedTensor {
  name: string;
  /** ggml order: ne[0] is the innermost dimension. */
  ne: number[];
  type: number;
  /** From the start of the data section. */
  offset: number;
  bytes: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  /** Where the data section starts, in bytes from the start of the file. */
  dataStart: number;
  fileSize: number;
  meta: Map<string, GgufCheckedValue>;
  tensors: GgufCheckedTensor[];
}

/** Reads from a file through a window, so a header of any size costs a few small reads and skipped bytes cost none. */
class Cursor {
  at = 0;
  private window = Buffer.alloc(0);
  private windowStart = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly fail: (what: string) => never,
  ) {}

  get left(): number {
    return this.size - this.at;
  }

  private bytes(n: number, what: string): Buffer {
    if (n > this.left) this.fail(`truncated: ${what} runs past the end of the file (byte ${this.at} + ${n} of ${this.size})`);
    const end = this.at + n;
    if (this.at < this.windowStart || end > this.windowStart + this.window.length) {
      this.window = Buffer.alloc(Math.min(this.size - this.at, Math.max(n, 1 << 20)));
      let got = 0;
      while (got < this.window.length) {
        const r = readSync(this.fd, this.window, got, this.window.length - got, this.at + got);
        if (r === 0) this.fail(`the file ended while reading ${what}`);
        got += r;
      }
      this.windowStart = this.at;
    }
    const out = this.window.subarray(this.at - this.windowStart, end - this.windowStart);
    this.at = end;
    return out;
  }

  skip(n: number, what: string): void {
    if (n > this.left) this.fail(`truncated: ${what} runs past the end of the file (byte ${this.at} + ${n} of ${this.size})`);
    this.at += n;
  }

  u32(what: string): number {
    return this.bytes(4, what).readUInt32LE(0);
  }

  /** A u64 that must be at most `max` (a count or size bounded by the bytes that could hold it). */
  u64(what: string, max: number): number {
    const v = this.bytes(8, what).readBigUInt64LE(0);
    if (v > BigInt(max)) this.fail(`${what} is ${v}; at most ${max} can be right here`);
    return Number(v);
  }

  /** A string: kept when at most `keep` bytes, else skipped (its length returned). */
  str(what: string, keep: number): string | number {
    const n = this.u64(`the length of ${what}`, this.left - 8);
    if (n > keep) {
      this.skip(n, what);
      return n;
    }
    return this.bytes(n, what).toString('utf8');
  }

  value(type: number, what: string): GgufCheckedValue {
    if (type === ValueType.STRING) {
      const s = this.str(what, KEPT_STRING_BYTES);
      return typeof s === 'string' ? s : { longString: s };
    }
    if (type === ValueType.ARRAY) {
      const elem = this.u32(`the element type of ${what}`);
      if (elem === ValueType.ARRAY) this.fail(`${what} is an array of arrays, which GGUF readers do not take`);
      const size = VALUE_TYPE_BYTES[elem];
      if (size === undefined && elem !== ValueType.STRING) this.fail(`${what} has an unknown element type ${elem}`);
      // Each element takes at least its size (a string at least its 8-byte length).
      const length = this.u64(`the length of ${what}`, Math.floor(this.left / (size ?? 8)));
      if (size !== undefined) this.skip(length * size, what);
      else for (let i = 0; i < length; i++) this.str(`${what}[${i}]`, 0);
      return { array: elem, length };
    }
    const size = VALUE_TYPE_BYTES[type];
    if (size === undefined) this.fail(`${what} has an unknown value type ${type}`);
    const b = this.bytes(size, what);
    switch (type) {
      case ValueType.UINT8: return b.readUInt8(0);
      case ValueType.INT8: return b.readInt8(0);
      case ValueType.UINT16: return b.readUInt16LE(0);
      case ValueType.INT16: return b.readInt16LE(0);
      case ValueType.UINT32: return b.readUInt32LE(0);
      case ValueType.INT32: return b.readInt32LE(0);
      case ValueType.FLOAT32: return b.readFloatLE(0);
      case ValueType.BOOL: return b.readUInt8(0) !== 0;
      case ValueType.UINT64: return b.readBigUInt64LE(0);
      case ValueType.INT64: return b.readBigInt64LE(0);
      default: return b.readDoubleLE(0);
    }
  }
}

/** Reads a GGUF file's header and checks its structure (see the module comment); throws a `model` error naming `path`. */
export function readGgufHeader(path: string): GgufHeader {
  const fail = (what: string): never => {
    throw new DiffusionVLError('model', `${path}: ${what} — the GGUF file is damaged or not one this build wrote; convert or download the model again`);
  };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return fail(`cannot be opened (${(err as Error).message})`);
  }
  try {
    const c = new Cursor(fd, fstatSync(fd).size, fail);
    if (c.size < 24 || c.u32('the magic') !== GGUF_MAGIC) fail('not a GGUF file (no GGUF magic)');
    const version = c.u32('the version');
    if (version !== 2 && version !== 3) fail(`GGUF version ${version}; versions 2 and 3 are read`);
    // Bounds from the smallest possible entries: a tensor info is ≥ 8+1+4+8+4+8 bytes, a key/value ≥ 8+1+4+1.
    const nTensors = c.u64('the tensor count', Math.floor((c.size - 24) / 33));
    const nKv = c.u64('the metadata count', Math.floor((c.size - 24) / 14));
    const meta = new Map<string, GgufCheckedValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str(`metadata key ${i}`, MAX_KEY_BYTES);
      if (typeof key !== 'string' || key.length === 0) fail(`metadata key ${i} is empty or longer than ${MAX_KEY_BYTES} bytes`);
      const k = key as string;
      if (meta.has(k)) fail(`metadata key ${k} appears twice`);
      meta.set(k, c.value(c.u32(`the type of ${k}`), k));
    }
    let alignment = GGUF_ALIGNMENT;
    if (meta.has('general.alignment')) {
      const a = meta.get('general.alignment');
      if (typeof a !== 'number' || !Number.isInteger(a) || a <= 0 || a > 1 << 30 || (a & (a - 1)) !== 0) fail(`general.alignment ${JSON.stringify(a)} is not a power of two`);
      alignment = a as number;
    }
    const tensors: GgufCheckedTensor[] = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = c.str(`the name of tensor ${i}`, GGML_MAX_NAME - 1);
      if (typeof name !== 'string' || name.length === 0) fail(`tensor ${i} has an empty name or one longer than ${GGML_MAX_NAME - 1} bytes`);
      const n = name as string;
      if (names.has(n)) fail(`tensor ${n} appears twice`);
      names.add(n);
      const dims = c.u32(`the dimension count of ${n}`);
      if (dims < 1 || dims > GGML_MAX_DIMS) fail(`tensor ${n} has ${dims} dimensions (1 to ${GGML_MAX_DIMS} are possible)`);
      const ne: number[] = [];
      let count = 1;
      for (let d = 0; d < dims; d++) {
        const v = c.u64(`dimension ${d} of ${n}`, Number.MAX_SAFE_INTEGER);
        count *= v;
        if (v < 1 || count > Number.MAX_SAFE_INTEGER) fail(`tensor ${n} has a dimension of ${v} or more values than can be stored`);
        ne.push(v);
      }
      const type = c.u32(`the type of ${n}`);
      const layout = GGML_TYPE_LAYOUT[type];
      if (!layout) fail(`tensor ${n} has an unknown ggml type ${type}`);
      const [typeName, block, blockBytes] = layout;
      if (ne[0] % block !== 0) fail(`tensor ${n} (${typeName}) has rows of ${ne[0]} values, not whole blocks of ${block}`);
      const offset = c.u64(`the data offset of ${n}`, Number.MAX_SAFE_INTEGER);
      tensors.push({ name: n, ne, type, offset, bytes: (count / block) * blockBytes });
    }
    const dataStart = Math.ceil(c.at / alignment) * alignment;
    // The data section holds the tensors in their declared order, each starting on the alignment (as llama.cpp requires).
    let expected = 0;
    for (const t of tensors) {
      if (t.offset !== expected) fail(`tensor ${t.name} starts at data offset ${t.offset}; the format puts it at ${expected}`);
      if (dataStart + t.offset + t.bytes > c.size) fail(`truncated: tensor ${t.name} (${t.bytes} bytes at ${dataStart + t.offset}) ends past the end of the file (${c.size} bytes)`);
      expected = Math.ceil((t.offset + t.bytes) / alignment) * alignment;
    }
    return { version, alignment, dataStart, fileSize: c.size, meta, tensors };
  } finally {
    closeSync(fd);
  }
}

/**
 * `readGgufHeader`, then what the llama.cpp backend relies on for a folder's decoder: a `qwen2` model whose
 * dimensions are the manifest's (the library asserts on a layer count outside 1..512 instead of refusing it).
 */
export function checkGgufDecoder(path: string, text: Pick<TextDims, 'numLayers' | 'hiddenSize' | 'numHeads' | 'numKvHeads' | 'intermediateSize' | 'vocabSize'>): GgufHeader {
  const h = readGgufHeader(path);
  const fail = (what: string): never => {
    throw new DiffusionVLError('model', `${path}: ${what} — the GGUF file does not belong to this model folder; convert or download the model again`);
  };
  const arch = h.meta.get('general.architecture');
  if (arch !== 'qwen2') fail(`general.architecture is ${JSON.stringify(arch)}, not "qwen2"`);
  const expect: [string, number][] = [
    ['qwen2.block_count', text.numLayers],
    ['qwen2.embedding_length', text.hiddenSize],
    ['qwen2.attention.head_count', text.numHeads],
    ['qwen2.attention.head_count_kv', text.numKvHeads],
    ['qwen2.feed_forward_length', text.intermediateSize],
  ];
  for (const [key, want] of expect) {
    const got = h.meta.get(key);
    if (got !== want) fail(`${key} is ${typeof got === 'object' ? 'not a number' : String(got)}; the manifest says ${want}`);
  }
  const vocab = h.meta.get('qwen2.vocab_size');
  if (vocab !== undefined && vocab !== text.vocabSize) fail(`qwen2.vocab_size is ${typeof vocab === 'object' ? 'not a number' : String(vocab)}; the manifest says ${text.vocabSize}`);
  const eps = h.meta.get('qwen2.attention.layer_norm_rms_epsilon');
  if (eps !== undefined && !(typeof eps === 'number' && eps > 0 && Number.isFinite(eps))) fail('qwen2.attention.layer_norm_rms_epsilon is not a positive number');
  if (text.numLayers < 1 || text.numLayers > LLAMA_MAX_LAYERS) fail(`${text.numLayers} layers; llama.cpp takes 1 to ${LLAMA_MAX_LAYERS}`);
  const emb = h.tensors.find((t) => t.name === 'token_embd.weight');
  if (!emb || emb.ne.length !== 2 || emb.ne[0] !== text.hiddenSize || emb.ne[1] !== text.vocabSize) {
    fail(`token_embd.weight is ${emb ? `[${emb.ne.join(', ')}]` : 'missing'}; the manifest says [${text.hiddenSize}, ${text.vocabSize}]`);
  }
  return h;
}
