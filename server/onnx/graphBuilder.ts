import { create, toBinary } from '@bufbuild/protobuf';
import { writeFileSync } from 'node:fs';
import {
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './gen/onnx_pb';
import { elemBytes, onnxDataType, type ElemType } from './dtypes';
import { ExternalDataWriter } from './externalData';

/** A named value in the graph (graph input, initializer or node output). */
export type Value = string;
/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

const OPSET = 18;
const IR_VERSION = 8n;

/** Small inline constants stay inside the ModelProto; anything larger goes to the external data file. */
const INLINE_LIMIT = 256;

export type TensorData = Float32Array | Uint16Array | Uint8Array | BigInt64Array | Int32Array;

/**
 * A typed builder for one ONNX graph. Values are referred to by name; `op` appends a node and returns its
 * output name(s). Weights stream straight into the external data file as they are added, so building a graph
 * holds at most one weight tensor in memory at a time.
 */
export class GraphBuilder {
  private nodes: NodeProto[] = [];
  private inputs: ValueInfoProto[] = [];
  private outputs: ValueInfoProto[] = [];
  private initializers: TensorProto[] = [];
  private names = new Set<string>();
  private counter = 0;
  private usesContrib = false;
  private dataWriter: ExternalDataWriter | null;

  /** `onnxPath` null: an in-memory graph (small runtime helper graphs, see modelBytes) that holds no external weights. */
  constructor(
    readonly name: string,
    readonly onnxPath: string | null,
  ) {
    this.dataWriter = onnxPath === null ? null : new ExternalDataWriter(`${onnxPath}.data`);
  }

  private get data(): ExternalDataWriter {
    if (!this.dataWriter) throw new Error(`${this.name}: an in-memory graph cannot hold external weights`);
    return this.dataWriter;
  }

  /** A fresh, unique value name with a readable prefix (reserved for a node output). */
  fresh(prefix: string): Value {
    const n = this.unusedName(prefix);
    this.names.add(n);
    return n;
  }

  /** A unique name not yet reserved, for a weight that `weight()` will then claim. */
  unusedName(prefix: string): string {
    let n = `${prefix}_${this.counter++}`;
    while (this.names.has(n)) n = `${prefix}_${this.counter++}`;
    return n;
  }

  input(name: string, type: ElemType, dims: Dim[]): Value {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declares `value` as a graph output under `name` (an Identity node renames it when needed). */
  output(value: Value, name: string, type: ElemType, dims: Dim[]): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push(node('Identity', [value], [name], {}, '', `${name}_out`));
    }
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A weight tensor, written to the external data file now. */
  weight(name: string, type: ElemType, dims: number[], data: TensorData): Value {
    this.claim(name);
    const count = dims.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length !== count * elemBytes[type]) {
      throw new Error(`${this.name}: weight ${name} has ${bytes.length} bytes, expected ${count * elemBytes[type]} for ${type}[${dims.join(',')}]`);
    }
    if (bytes.length <= INLINE_LIMIT) {
      this.initializers.push(create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: onnxDataType[type], rawData: bytes.slice() }));
    } else {
      this.externalInitializer(name, type, dims, this.data.append(bytes));
    }
    return name;
  }

  /**
   * A large weight written in pieces (see ExternalDataWriter.appendChunks): `produce` emits the tensor's bytes in
   * order, which must add up to `dims` of `type`.
   */
  weightChunks(name: string, type: ElemType, dims: number[], produce: (emit: (bytes: Uint8Array) => void) => void): Value {
    this.claim(name);
    const expected = dims.reduce((a, b) => a * b, 1) * elemBytes[type];
    const where = this.data.appendChunks(produce);
    if (where.length !== expected) throw new Error(`${this.name}: weight ${name} streamed ${where.length} bytes, expected ${expected}`);
    this.externalInitializer(name, type, dims, where);
    return name;
  }

  /** An initializer whose bytes live in the external data file at `where`. */
  private externalInitializer(name: string, type: ElemType, dims: number[], where: { offset: number; length: number }): void {
    const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value });
    this.initializers.push(
      create(TensorProtoSchema, {
        name,
        dims: dims.map(BigInt),
        dataType: onnxDataType[type],
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [entry('location', this.data.location), entry('offset', String(where.offset)), entry('length', String(where.length))],
      }),
    );
  }

  /** A small constant (shape vectors, scalars). */
  const(type: ElemType, dims: number[], values: number[], prefix = 'const'): Value {
    const name = this.unusedName(prefix);
    let data: TensorData;
    switch (type) {
      case 'float32':
        data = Float32Array.from(values);
        break;
      case 'int64':
        data = BigInt64Array.from(values.map(BigInt));
        break;
      case 'int32':
        data = Int32Array.from(values);
        break;
      default:
        throw new Error(`const: unsupported type ${type}`);
    }
    return this.weight(name, type, dims, data);
  }

  /** int64 vector constant (shapes, axes, split sizes). */
  ints(values: number[], prefix = 'ints'): Value {
    return this.const('int64', [values.length], values, prefix);
  }

  /** float32 scalar constant. */
  scalar(value: number, prefix = 'scalar'): Value {
    return this.const('float32', [], [value], prefix);
  }

  /** Appends a node with one output. */
  op(opType: string, inputs: Value[], attrs: Record<string, AttrValue> = {}, domain = ''): Value {
    return this.opN(opType, inputs, 1, attrs, domain)[0];
  }

  /** Appends a node with `outputs` outputs. */
  opN(opType: string, inputs: Value[], outputs: number, attrs: Record<string, AttrValue> = {}, domain = ''): Value[] {
    if (domain === 'com.microsoft') this.usesContrib = true;
    const outs = Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push(node(opType, inputs, outs, attrs, domain, this.fresh(`${opType}_node`)));
    return outs;
  }

  /** Serialises the ModelProto next to its data file. */
  save(docString: string, metadata: Record<string, string> = {}): void {
    if (this.onnxPath === null) throw new Error(`${this.name}: an in-memory graph has no file; use modelBytes()`);
    this.data.close();
    writeFileSync(this.onnxPath, this.modelBytes(docString, metadata));
  }

  /** The serialised ModelProto (for an in-memory graph, what InferenceSession.create takes). */
  modelBytes(docString: string, metadata: Record<string, string> = {}): Uint8Array {
    const graph = create(GraphProtoSchema, {
      name: this.name,
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer: this.initializers,
    });
    const opsets = [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(OPSET) })];
    if (this.usesContrib) opsets.push(create(OperatorSetIdProtoSchema, { domain: 'com.microsoft', version: 1n }));
    const model = create(ModelProtoSchema, {
      irVersion: IR_VERSION,
      opsetImport: opsets,
      producerName: 'diffusionvl-vscode',
      producerVersion: '0.1.0',
      docString,
      graph,
      metadataProps: Object.entries(metadata).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    });
    return toBinary(ModelProtoSchema, model);
  }

  /** Releases the data file without saving (on errors). */
  abandon(): void {
    this.dataWriter?.close();
  }

  get weightBytes(): number {
    return this.dataWriter?.bytesWritten ?? 0;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`${this.name}: duplicate value name ${name}`);
    this.names.add(name);
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): ValueInfoProto {
  const shape = create(TensorShapeProtoSchema, {
    dim: dims.map((d) =>
      create(TensorShapeProto_DimensionSchema, {
        value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
      }),
    ),
  });
  const tensorType = create(TypeProto_TensorSchema, { elemType: onnxDataType[type], shape });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

function node(opType: string, inputs: Value[], outputs: Value[], attrs: Record<string, AttrValue>, domain: string, name: string): NodeProto {
  return create(NodeProtoSchema, {
    opType,
    input: inputs,
    output: outputs,
    domain,
    name,
    attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
  });
}

function attribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float } for non-integer ${v}`);
    return create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) });
  }
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.map(BigInt) });
  if ('float' in v) return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.float });
  return create(AttributeProtoSchema, { name, type: AT.FLOATS, floats: v.floats });
}
