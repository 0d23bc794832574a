import type { StatusResult } from '../server/protocol';

/** Plain names for ONNX Runtime's execution providers. */
const PROVIDER_NAMES: Record<string, string> = {
  cuda: 'NVIDIA GPU (CUDA)',
  dml: 'GPU (DirectML)',
  coreml: 'Apple GPU/Neural Engine (Core ML)',
  webgpu: 'GPU (WebGPU)',
  cpu: 'CPU',
};

export interface ComputeExplanation {
  /** For the status bar: "CPU", "GPU (CUDA)", "CPU or GPU". */
  short: string;
  /** What runs where and why, in a user's words. */
  what: string;
  /** What the user can do about it from the extension, if anything. */
  todo?: string;
  /** The engine's own reason, for the log and the details row. */
  details?: string;
}

function shortName(p: string): string {
  return p === 'cpu' ? 'CPU' : `GPU (${p === 'cuda' ? 'CUDA' : p === 'dml' ? 'DirectML' : p === 'coreml' ? 'Core ML' : p === 'webgpu' ? 'WebGPU' : p})`;
}

/**
 * Where the model runs, told for a user rather than a developer: the engine's reason (which names libraries and
 * fallbacks) stays available as details.
 */
export function explainCompute(s: StatusResult | undefined): ComputeExplanation {
  if (!s) return { short: '', what: 'The DiffusionVL server has not reported yet.' };
  const requested = s.provider.requested;
  const inUse = s.provider.inUse;
  const details = s.provider.reason;
  const setting = 'the setting DiffusionVL › Execution Provider (diffusionvl.executionProvider)';
  if (!inUse) {
    return {
      short: requested === 'cpu' ? 'CPU' : requested === 'auto' ? 'CPU or GPU' : shortName(requested),
      what:
        requested === 'auto'
          ? 'The model loads on your first question: on a GPU if this machine has one that ONNX Runtime can use, otherwise on the CPU.'
          : `The model loads on your first question, on the ${PROVIDER_NAMES[requested] ?? requested} (chosen in ${setting}).`,
      details,
    };
  }
  const fellBack = inUse === 'cpu' && requested !== 'cpu';
  if (fellBack) {
    return {
      short: 'CPU',
      what:
        requested === 'auto'
          ? 'Runs on the CPU: no GPU that this build of ONNX Runtime can use was found on this machine.'
          : `Runs on the CPU: the ${PROVIDER_NAMES[requested] ?? requested} you chose could not start here.`,
      todo:
        'Everything works on the CPU, only slower with the large models. GPU use needs a supported GPU with its driver (NVIDIA: CUDA 12 and cuDNN 9). ' +
        `To stop trying the GPU, set ${setting} to "cpu".`,
      details,
    };
  }
  return {
    short: shortName(inUse),
    what:
      inUse === 'cpu'
        ? `Runs on the CPU, as chosen in ${setting}.`
        : `Runs on the ${PROVIDER_NAMES[inUse] ?? inUse}${requested === 'auto' ? ', picked automatically' : ''}.`,
    todo: inUse === 'cpu' ? `To try a GPU, set ${setting} to "auto".` : undefined,
    details,
  };
}

const BACKEND_NAMES: Record<string, string> = { onnx: 'ONNX Runtime', 'llama.cpp': 'llama.cpp' };

/**
 * Which runtime runs the text decoder (the vision tower is always ONNX Runtime's), and why: the engine's reason names
 * the device llama.cpp picked or why it could not run, so it is shown as it is, after the plain sentence.
 */
export function explainBackend(s: StatusResult | undefined): ComputeExplanation {
  if (!s) return { short: '', what: 'The DiffusionVL server has not reported yet.' };
  const { requested, inUse, reason } = s.backend;
  const setting = 'the setting DiffusionVL › Backend (diffusionvl.backend)';
  if (!inUse) {
    return {
      short: requested === 'auto' ? 'llama.cpp or ONNX Runtime' : BACKEND_NAMES[requested] ?? requested,
      what:
        requested === 'auto'
          ? 'Chosen when the model loads: llama.cpp if the model folder has a GGUF text decoder, otherwise ONNX Runtime.'
          : `${BACKEND_NAMES[requested] ?? requested} will run the text decoder (chosen in ${setting}).`,
      details: reason,
    };
  }
  const fellBack = inUse === 'onnx' && requested === 'llama.cpp';
  return {
    short: BACKEND_NAMES[inUse] ?? inUse,
    // Worded without "runs on", which is the label of the row above.
    what: fellBack
      ? 'ONNX Runtime runs the text decoder: llama.cpp could not run it here.'
      : `${BACKEND_NAMES[inUse] ?? inUse} runs the text decoder${requested === 'auto' ? ', picked automatically' : ''}.`,
    todo: fellBack ? `To stop trying llama.cpp, set ${setting} to "onnx".` : undefined,
    details: reason,
  };
}
