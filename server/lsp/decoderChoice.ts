import type { ExecutionProvider } from '../engine/api';
import { chooseLlamaDevice } from '../engine/backends/llamacpp/devices';
import { loadLlamaLibrary, type LlamaDeviceInfo } from '../engine/backends/llamacpp/library';
import type { DecoderKind, GgufType, Precision } from '../engine/manifest';

/** What Download Model and prepareModel convert to when the client does not say. */
export interface DecoderChoice {
  decoder: DecoderKind;
  /** `--precision` for that decoder (an ONNX precision, or a GGUF type). */
  precision: Precision | GgufType;
  reason: string;
}

/** Today's ONNX choice when llama.cpp is not there: fp16 (WebGPU's type; CPU runs it too). */
const ONNX_DEFAULT: Precision = 'fp16';

/**
 * The decoder this machine runs fastest: llama.cpp when its library loads here — F16 on a hardware GPU it can use
 * for the provider asked for, Q4_K_M on the CPU — else ONNX Runtime as before. Loading the library is safe to
 * repeat (once per process) and any failure is a reason, never a crash.
 */
export function fastestDecoder(provider: ExecutionProvider, log?: (line: string) => void, devicesOf: () => readonly LlamaDeviceInfo[] = () => libraryDevices(log)): DecoderChoice {
  let devices;
  try {
    devices = devicesOf();
  } catch (err) {
    return { decoder: 'onnx', precision: ONNX_DEFAULT, reason: `ONNX Runtime decoder (${ONNX_DEFAULT}): llama.cpp is not available (${err instanceof Error ? err.message : String(err)})` };
  }
  const device = chooseLlamaDevice(devices, provider);
  if (device.device) return { decoder: 'gguf', precision: 'fp16', reason: `llama.cpp decoder, F16 on ${device.label} (${device.reason})` };
  return { decoder: 'gguf', precision: 'q4_k_m', reason: `llama.cpp decoder, Q4_K_M on the CPU (${device.reason})` };
}

function libraryDevices(log?: (line: string) => void): readonly LlamaDeviceInfo[] {
  return loadLlamaLibrary({ log: (level, text) => (level === 'error' ? log?.(`llama.cpp: ${text}`) : undefined) }).devices;
}
