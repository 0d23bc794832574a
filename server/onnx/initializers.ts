import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation, TensorProto_DataType as DT, type TensorProto } from './gen/onnx_pb';

/**
 * Reads an ONNX graph's weights (initializers) back by name, exactly as they were written: inline raw data, or the
 * bytes in the external data file the graph names (as GraphBuilder writes them). Only the ModelProto is parsed up
 * front; a tensor's bytes are read when asked for.
 */
export class OnnxInitializers {
  private readonly byName = new Map<string, TensorProto>();

  constructor(readonly path: string) {
    const model = fromBinary(ModelProtoSchema, readFileSync(path));
    for (const t of model.graph?.initializer ?? []) this.byName.set(t.name, t);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The initializer's dims, or undefined when the graph has none of that name. */
  dims(name: string): number[] | undefined {
    return this.byName.get(name)?.dims.map(Number);
  }

  /** A float32 initializer's values; throws naming the tensor when it is missing, of another type or cut short. */
  readF32(name: string): { dims: number[]; data: Float32Array } {
    const t = this.byName.get(name);
    if (!t) throw new Error(`${this.path}: no initializer ${name}`);
    if (t.dataType !== DT.FLOAT) throw new Error(`${this.path}: initializer ${name} is ${DT[t.dataType] ?? t.dataType}, not FLOAT`);
    const dims = t.dims.map(Number);
    const count = dims.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) data = this.external(t, count * 4);
    else if (t.rawData.length > 0) data = copyF32(t.rawData);
    else data = Float32Array.from(t.floatData);
    if (data.length !== count) throw new Error(`${this.path}: initializer ${name} holds ${data.length} values, its dims [${dims.join(', ')}] need ${count}`);
    return { dims, data };
  }

  private external(t: TensorProto, expected: number): Float32Array {
    const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
    const location = kv.get('location') ?? '';
    // The data file sits beside the graph; a location leading anywhere else is not one this project writes.
    if (location === '' || basename(location) !== location) throw new Error(`${this.path}: initializer ${t.name} names external data ${JSON.stringify(location)} outside the model folder`);
    const offset = Number(kv.get('offset') ?? 0);
    const length = Number(kv.get('length') ?? expected);
    if (length !== expected) throw new Error(`${this.path}: initializer ${t.name} has ${length} bytes of external data, its dims need ${expected}`);
    const bytes = new Uint8Array(length);
    const fd = openSync(join(dirname(this.path), location), 'r');
    try {
      let got = 0;
      while (got < length) {
        const n = readSync(fd, bytes, got, length - got, offset + got);
        if (n === 0) throw new Error(`${this.path}: external data of ${t.name} ends early in ${location}`);
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    return new Float32Array(bytes.buffer);
  }
}

/** Little-endian float32 values from bytes at any alignment. */
function copyF32(bytes: Uint8Array): Float32Array {
  const out = new Uint8Array(bytes.length - (bytes.length % 4));
  out.set(bytes.subarray(0, out.length));
  return new Float32Array(out.buffer);
}
