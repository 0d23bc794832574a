import type { KvCache } from '../../../server/engine/kvCache';
import { HostKvCache } from '../../../server/engine/backends/onnx/hostKvCache';
import type { ModelManifest } from '../../../server/engine/manifest';
import { open } from '../../../server/engine/attention';
import type { OrtModel } from '../../../server/engine/backends/onnx/ortModel';
import { range } from '../../../server/engine/rope';

/**
 * A KV cache holding `past` positions for timing forwards at that depth. In host memory the values do not change the
 * work done, so a sized, zero-filled cache is enough; a device-resident cache (WebGPU) is filled by one pass.
 */
export async function cacheAtDepth(model: OrtModel, m: ModelManifest, past: number, row: Float32Array): Promise<KvCache> {
  const cache = model.createCache(past);
  if (cache instanceof HostKvCache) {
    cache.length = past;
    return cache;
  }
  const h = m.text.hiddenSize;
  const embeds = new Float32Array(past * h);
  for (let r = 0; r < past; r++) embeds.set(row, r * h);
  await model.decode(embeds, range(0, past), open(past), cache, { commitRows: past, outputRows: [] });
  return cache;
}
