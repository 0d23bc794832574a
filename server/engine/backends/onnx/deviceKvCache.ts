import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../onnx/graphBuilder';
import type { KvCache } from '../../kvCache';

/**
 * The KV cache kept in device memory (WebGPU IO binding): one GPU buffer per layer for K and one for V, never read
 * back. The decoder is fed these buffers as `past_key.i` / `past_value.i`; a commit appends the first rows of the
 * decoder's device-resident `new_key.i` / `new_value.i` outputs with a small concat graph that also runs on the
 * device. A prefix (after `truncate`, for prompt-prefix reuse) is a tensor of fewer rows over the same buffer, so
 * truncating costs nothing.
 *
 * ONNX Runtime always allocates a run's outputs itself, so appending copies the layer's cache once per commit
 * (once per block, not per denoising step): at the 3B shape, 36 layers × 2 × P × 256 × 2 bytes, ≈ 37 MB at
 * P = 1000, tens of microseconds of device bandwidth.
 */
export class DeviceKvCache implements KvCache {
  length = 0;
  /** Owned tensors (their buffers hold `held` rows), or null before the first commit. */
  private keys: ort.Tensor[] | null = null;
  private values: ort.Tensor[] | null = null;
  private held = 0;

  constructor(
    readonly numLayers: number,
    readonly rowSize: number,
    readonly dtype: 'float32' | 'float16',
    private appendSession: ort.InferenceSession,
  ) {}

  /** Feeds for the first `length` positions of layer i: a device tensor, or an empty host tensor when nothing is cached. */
  pastKey(i: number): ort.Tensor {
    return this.past(this.keys, i);
  }

  pastValue(i: number): ort.Tensor {
    return this.past(this.values, i);
  }

  /** Appends the first `rows` rows of each layer's new K/V (device tensors of a decoder run; the caller frees them). */
  async append(newKeys: ort.Tensor[], newValues: ort.Tensor[], rows: number): Promise<void> {
    const feeds: Record<string, ort.Tensor> = { rows: new ort.Tensor('int64', BigInt64Array.of(BigInt(rows)), [1]) };
    for (let i = 0; i < this.numLayers; i++) {
      feeds[`past_key.${i}`] = this.pastKey(i);
      feeds[`past_value.${i}`] = this.pastValue(i);
      feeds[`new_key.${i}`] = newKeys[i];
      feeds[`new_value.${i}`] = newValues[i];
    }
    const out = await this.appendSession.run(feeds);
    this.release();
    this.keys = [];
    this.values = [];
    for (let i = 0; i < this.numLayers; i++) {
      this.keys.push(out[`key.${i}`]);
      this.values.push(out[`value.${i}`]);
    }
    this.length += rows;
    this.held = this.length;
  }

  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  dispose(): void {
    this.release();
    this.length = 0;
  }

  private past(owned: ort.Tensor[] | null, i: number): ort.Tensor {
    const dims = [1, this.length, this.rowSize];
    if (!owned || this.length === 0) return new ort.Tensor(this.dtype, this.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0), dims);
    if (this.length === this.held) return owned[i];
    return ort.Tensor.fromGpuBuffer(owned[i].gpuBuffer as never, { dataType: this.dtype, dims });
  }

  private release(): void {
    for (const t of [...(this.keys ?? []), ...(this.values ?? [])]) t.dispose();
    this.keys = this.values = null;
    this.held = 0;
  }
}

/**
 * The append graph: per layer `key.i = Concat(past_key.i, new_key.i[:, :rows])` (and the same for values), all
 * outputs left on the device. Built in memory: it depends only on the layer count, row size and dtype.
 */
export async function createKvAppendSession(numLayers: number, rowSize: number, dtype: 'float32' | 'float16'): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('kv_append', null);
  const rows = g.input('rows', 'int64', [1]);
  const zero = g.ints([0]);
  const axis = g.ints([1]);
  for (let i = 0; i < numLayers; i++) {
    for (const kind of ['key', 'value']) {
      const past = g.input(`past_${kind}.${i}`, dtype, [1, 'P', rowSize]);
      const fresh = g.input(`new_${kind}.${i}`, dtype, [1, 'S', rowSize]);
      const kept = g.op('Slice', [fresh, zero, rows, axis]);
      g.output(g.op('Concat', [past, kept], { axis: 1 }), `${kind}.${i}`, dtype, [1, 'T', rowSize]);
    }
  }
  return ort.InferenceSession.create(g.modelBytes('KV cache append on the device'), {
    executionProviders: ['webgpu'],
    preferredOutputLocation: 'gpu-buffer',
    logSeverityLevel: 4,
  });
}
