import type { ExecutionProvider } from '../../api';
import type { LlamaDeviceInfo } from './library';

/**
 * Which llama.cpp device runs the decoder, from the one provider choice the user makes (`provider` /
 * `diffusionvl.executionProvider`): `cpu` is the CPU; `cuda` a CUDA device; `auto` and the GPU providers of ONNX
 * Runtime (`webgpu`, `dml`, `coreml`) the first hardware GPU llama.cpp found (Vulkan, Metal or CUDA), else the CPU,
 * with the reason. A software rasteriser posing as a GPU (llvmpipe, lavapipe, SwiftShader) is never chosen.
 */
export interface LlamaDeviceChoice {
  /** null = the CPU (no layer offloaded). */
  device: LlamaDeviceInfo | null;
  /** 'cpu' or the device's name (e.g. Vulkan0, CUDA0, MTL0). */
  label: string;
  reason: string;
}

const SOFTWARE_GPU = /llvmpipe|lavapipe|swiftshader|software|softpipe/i;

export function isSoftwareGpu(d: LlamaDeviceInfo): boolean {
  return SOFTWARE_GPU.test(d.description) || SOFTWARE_GPU.test(d.name);
}

export function chooseLlamaDevice(devices: readonly LlamaDeviceInfo[], requested: ExecutionProvider): LlamaDeviceChoice {
  const cpu = (reason: string): LlamaDeviceChoice => ({ device: null, label: 'cpu', reason });
  if (requested === 'cpu') return cpu('cpu requested');
  const gpus = devices.filter((d) => d.type === 'gpu' || d.type === 'igpu');
  const hardware = gpus.filter((d) => !isSoftwareGpu(d));
  const wanted = requested === 'cuda' ? hardware.filter((d) => /^cuda/i.test(d.name)) : hardware;
  // A discrete GPU before an integrated one.
  const pick = wanted.find((d) => d.type === 'gpu') ?? wanted[0];
  if (pick) return { device: pick, label: pick.name, reason: `${requested === 'auto' ? 'auto' : `${requested} requested`}: llama.cpp ${pick.name} (${pick.description})` };
  const skipped = gpus.filter(isSoftwareGpu).map((d) => `${d.name} (${d.description}) is a software GPU`);
  const none = requested === 'cuda' ? 'no CUDA device (the CUDA library package is not installed or no NVIDIA driver was found)' : 'no hardware GPU found by llama.cpp';
  return cpu(`${requested === 'auto' ? 'auto' : `${requested} unavailable`}: ${[none, ...skipped].join('; ')}; llama.cpp on the cpu`);
}
