import type { ExecutionProvider } from './api';
import { NoVulkanDriverError, vulkanLoaderFound } from './backends/onnx/vulkanDrivers';

/**
 * Execution-provider choice, owned by the engine. A GPU provider that cannot start falls back to CPU and the reason
 * is reported in EngineInfo: never silently.
 */
export type ConcreteProvider = Exclude<ExecutionProvider, 'auto'>;

/**
 * Providers to try, in order; CPU is always last. 'auto' tries WebGPU: it ships inside onnxruntime-node on every
 * platform (Vulkan, Metal, Direct3D 12 through Dawn), needs nothing but a GPU driver, and is the only provider whose
 * tensors can stay on the device between runs from Node (IO binding), which keeps the KV cache on the GPU. CUDA,
 * DirectML and Core ML stay selectable by name.
 */
export function providerCandidates(requested: ExecutionProvider): ConcreteProvider[] {
  if (requested === 'cpu') return ['cpu'];
  if (requested === 'auto') return ['webgpu', 'cpu'];
  return [requested, 'cpu'];
}

export interface ProviderChoice<T> {
  provider: ConcreteProvider;
  reason: string;
  value: T;
}

/**
 * Runs `create` with each candidate until one succeeds. The reason names every provider that failed and why, or
 * says the requested one is in use. `create` learns whether the choice is automatic (then it must refuse a
 * software GPU adapter).
 */
export async function withFallback<T>(
  requested: ExecutionProvider,
  create: (provider: ConcreteProvider, auto: boolean) => Promise<T>,
): Promise<ProviderChoice<T>> {
  const failures: string[] = [];
  for (const provider of providerCandidates(requested)) {
    try {
      const value = await create(provider, requested === 'auto');
      const reason = failures.length
        ? `${failures.join('; ')}; fell back to ${provider}`
        : requested === 'auto'
          ? `auto: ${provider} selected`
          : `${provider} requested`;
      return { provider, reason, value };
    } catch (err) {
      if (provider === 'cpu') throw err;
      failures.push(`${provider} unavailable: ${describeProviderError(provider, err)}`);
    }
  }
  throw new Error(failures.join('; '));
}

/** ONNX Runtime's messages carry source paths and assertion text; say what the user can act on instead. */
export function describeProviderError(provider: ConcreteProvider, err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof NoVulkanDriverError) return `no WebGPU adapter: no GPU driver with Vulkan, Metal or Direct3D 12 support was found (${msg})`;
  if (provider === 'webgpu' && /Failed to get a WebGPU adapter/i.test(msg)) {
    const hint = process.platform === 'linux' && !vulkanLoaderFound() ? ' (no Vulkan loader libvulkan.so.1 found: install libvulkan1 and the GPU vendor\'s Vulkan driver)' : '';
    return `no WebGPU adapter: no GPU driver with Vulkan, Metal or Direct3D 12 support was found${hint}`;
  }
  if (provider === 'webgpu' && /requires f16 but the device does not support it/.test(msg)) {
    return 'the WebGPU adapter has no shader-f16 support, which this fp16 model needs (use an fp32 or int4 conversion)';
  }
  if (/OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library/.test(msg)) {
    return 'the CUDA provider library failed to load (needs CUDA 12 and cuDNN 9)';
  }
  return msg.split('\n')[0].slice(0, 300);
}
