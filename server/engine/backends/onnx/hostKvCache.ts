import type { KvCache } from '../../kvCache';

/**
 * Per-layer key/value cache in host memory, token-major ([positions, kvHeads·headDim]) so that the first P positions are one
 * contiguous prefix: the decoder is fed `subarray` views (ONNX Runtime does not copy CPU inputs) and a committed
 * block is appended with one `set()` per tensor. Capacity grows by doubling.
 */
export type KvArray = Float32Array | Uint16Array;

export class HostKvCache implements KvCache {
  /** Cached positions. */
  length = 0;
  private capacity: number;
  keys: KvArray[] = [];
  values: KvArray[] = [];

  constructor(
    readonly numLayers: number,
    /** kvHeads · headDim. */
    readonly rowSize: number,
    readonly dtype: 'float32' | 'float16',
    initialCapacity = 256,
  ) {
    this.capacity = Math.max(1, initialCapacity);
    for (let i = 0; i < numLayers; i++) {
      this.keys.push(this.alloc(this.capacity));
      this.values.push(this.alloc(this.capacity));
    }
  }

  /** Views of the first `length` positions of layer i. */
  pastKey(i: number): KvArray {
    return this.keys[i].subarray(0, this.length * this.rowSize);
  }

  pastValue(i: number): KvArray {
    return this.values[i].subarray(0, this.length * this.rowSize);
  }

  /** Appends the first `rows` rows of each layer's new K/V (graph outputs may hold more rows than are committed). */
  append(newKeys: KvArray[], newValues: KvArray[], rows: number): void {
    this.ensure(this.length + rows);
    const n = rows * this.rowSize;
    const at = this.length * this.rowSize;
    for (let i = 0; i < this.numLayers; i++) {
      this.keys[i].set(newKeys[i].subarray(0, n), at);
      this.values[i].set(newValues[i].subarray(0, n), at);
    }
    this.length += rows;
  }

  /** Forgets everything after the first `length` positions (kept bytes stay valid for prefix reuse). */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  private ensure(positions: number): void {
    if (positions <= this.capacity) return;
    let cap = this.capacity;
    while (cap < positions) cap *= 2;
    for (let i = 0; i < this.numLayers; i++) {
      const k = this.alloc(cap);
      k.set(this.keys[i].subarray(0, this.length * this.rowSize));
      this.keys[i] = k;
      const v = this.alloc(cap);
      v.set(this.values[i].subarray(0, this.length * this.rowSize));
      this.values[i] = v;
    }
    this.capacity = cap;
  }

  dispose(): void {
    // Plain JS memory: nothing to free by hand.
  }

  private alloc(positions: number): KvArray {
    return this.dtype === 'float16' ? new Uint16Array(positions * this.rowSize) : new Float32Array(positions * this.rowSize);
  }
}
