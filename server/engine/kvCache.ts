/**
 * Where committed K/V live, owned by the decoder backend: host arrays or device buffers for ONNX Runtime
 * (backends/onnx), the context's own cache for llama.cpp. The loop only counts and truncates.
 */
export interface KvCache {
  /** Cached positions. */
  readonly length: number;
  /** Forgets everything after the first `length` positions (kept bytes stay valid for prefix reuse). */
  truncate(length: number): void;
  /** Frees what the cache holds outside JS memory (device buffers). */
  dispose(): void;
}
