import type { KvCache } from '../../../server/engine/kvCache';
import { HostKvCache } from '../../../server/engine/backends/onnx/hostKvCache';
import type { ModelManifest } from '../../../server/engine/manifest';
import { blockCausal } from '../../../server/engine/attention';
import type { DecoderRuntime } from '../../../server/engine/backends/decoderChoice';
import { range } from '../../../server/engine/rope';

/**
 * A KV cache holding `past` positions for timing forwards at that depth. In host memory the values do not change the
 * work done, so a sized, zero-filled cache is enough; a device-resident cache (WebGPU) and llama.cpp's are filled by a
 * block-causal prefill.
 */
export async function cacheAtDepth(model: DecoderRuntime, m: ModelManifest, past: number, row: Float32Array): Promise<KvCache> {
  const cache = model.createCache(past);
  if (cache instanceof HostKvCache) {
    cache.length = past;
    return cache;
  }
  const h = m.text.hiddenSize;
  const embeds = new Float32Array(past * h);
  for (let r = 0; r < past; r++) embeds.set(row, r * h);
  await model.decode(embeds, range(0, past), blockCausal(m.blockSize), cache, { commitRows: past, outputRows: [] });
  return cache;
}
