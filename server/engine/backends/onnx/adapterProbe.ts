import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../onnx/graphBuilder';

/**
 * Is the WebGPU adapter real hardware? onnxruntime-node does not expose Dawn's adapter type, and a software Vulkan
 * driver (SwiftShader, lavapipe/llvmpipe) looks like any other adapter to it. So time the same compute-bound graph on
 * WebGPU and on the CPU: software adapters run it hundreds of times slower than the CPU they emulate on (SwiftShader
 * ≈ 800× on a 2-core VM), real GPUs run it faster than, or close to, the CPU even with their dispatch overhead.
 */
export interface AdapterProbe {
  gpuMs: number;
  cpuMs: number;
  /** gpuMs / cpuMs. */
  ratio: number;
  software: boolean;
}

/** Side of the probe's square matrices: x·x·x at 384 is 113 M multiply-adds, a few ms on a laptop CPU. */
const N = 384;
/** A real GPU, however small, stays well inside this factor of the CPU's time (plus a fixed overhead). */
const SOFTWARE_RATIO = 10;
const OVERHEAD_MS = 5;

let probeModel: Uint8Array | undefined;

export async function probeWebGpuAdapter(): Promise<AdapterProbe> {
  probeModel ??= buildProbe();
  const x = new Float32Array(N * N).map((_, i) => ((i * 7919) % 17) / 17 - 0.5);
  const feeds = { x: new ort.Tensor('float32', x, [N, N]) };
  const time = async (provider: 'cpu' | 'webgpu', runs: number): Promise<number> => {
    const session = await ort.InferenceSession.create(probeModel!, { executionProviders: [provider], logSeverityLevel: 4 });
    try {
      await session.run(feeds); // compiles shaders / warms caches
      let best = Infinity;
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await session.run(feeds);
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    } finally {
      await session.release();
    }
  };
  const gpuMs = await time('webgpu', 1);
  const cpuMs = await time('cpu', 3);
  const ratio = gpuMs / cpuMs;
  return { gpuMs, cpuMs, ratio, software: gpuMs > SOFTWARE_RATIO * cpuMs + OVERHEAD_MS };
}

/** Throws (so that 'auto' falls back to the CPU, saying why) when the adapter is a software one. */
export async function requireHardwareAdapter(): Promise<void> {
  const p = await probeWebGpuAdapter();
  if (p.software) {
    throw new Error(
      `the WebGPU adapter is a software renderer (a probe ran ${Math.round(p.ratio)}× slower than on the CPU: ` +
        `${p.gpuMs.toFixed(1)} ms vs ${p.cpuMs.toFixed(1)} ms), so auto does not use it (request webgpu by name to use it anyway)`,
    );
  }
}

function buildProbe(): Uint8Array {
  const g = new GraphBuilder('webgpu_adapter_probe', null);
  const x = g.input('x', 'float32', [N, N]);
  const y = g.op('MatMul', [g.op('MatMul', [x, x]), x]);
  // Reduce on the device: the probe times compute, not a read-back.
  g.output(g.op('ReduceSum', [y], { keepdims: 0 }), 'sum', 'float32', []);
  return g.modelBytes('WebGPU adapter probe: x·x·x');
}
