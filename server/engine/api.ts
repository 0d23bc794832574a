/**
 * The engine's public surface: what the CLI and the sidecar use. Nothing here knows about LSP or VS Code.
 * Inference runs in a worker thread; every method returns promptly and never blocks the caller's event loop.
 */

import { DiffusionVLError } from './errors';
import type { GenerationOptions } from './generationOptions';

export type { ErrorKind } from './errors';
export { DiffusionVLError, errorKind } from './errors';
export type { GenerationOptions, RemaskingStrategy } from './generationOptions';

export const EXECUTION_PROVIDERS = ['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
/** The one default, for the CLI, the sidecar and the engine alike: the best provider that starts, else cpu. */
export const DEFAULT_PROVIDER: ExecutionProvider = 'auto';

/**
 * Which runtime runs the text decoder and head: `llama.cpp` (a GGUF decoder in the model folder), `onnx` (ONNX
 * Runtime), or `auto`: llama.cpp when the folder has a GGUF decoder and the library loads, else ONNX Runtime, with
 * the reason in EngineInfo. The vision tower always runs on ONNX Runtime.
 */
export const DECODER_BACKENDS = ['auto', 'onnx', 'llama.cpp'] as const;
export type DecoderBackend = (typeof DECODER_BACKENDS)[number];
export const DEFAULT_BACKEND: DecoderBackend = 'auto';

export interface EngineOptions {
  /** A folder written by `diffusionvl convert` (holds manifest.json). */
  modelDir: string;
  /** Default {@link DEFAULT_PROVIDER}. */
  provider?: ExecutionProvider;
  /** Default {@link DEFAULT_BACKEND}. */
  backend?: DecoderBackend;
  /** ONNX Runtime intra-op threads (default: ORT's choice). */
  threads?: number;
  /**
   * Where the KV cache lives on WebGPU: on the device (default, IO binding) or in host memory, copied in every pass
   * as other GPU providers do (for comparisons and benchmarks). Other providers always use host memory.
   */
  kvOnDevice?: boolean;
}

/** A request's {@link GenerationOptions} plus engine tuning the CLI and benchmarks use (not on the wire). */
export interface RunOptions extends GenerationOptions {
  /** Fold each block's commit pass into the next block's first forward (default true). */
  fusedCommit?: boolean;
  /** Recompute the whole sequence every forward, no KV reuse (benchmarks only). */
  noKvCache?: boolean;
  /** Reuse the previous prompt's K/V for identical leading full blocks (default true). */
  prefixCache?: boolean;
  /**
   * How alpha is handled: composited over white, or dropped as the official processor does. Default: white for
   * the QwenVL models, the official behaviour (drop) for the SigLIP model.
   */
  alpha?: 'white' | 'drop';
  /** SigLIP model only: `pad` or `anyres_max_N`, overriding its config (the official driver uses `pad` for several images). */
  imageAspectRatio?: string;
}

/** An image file, or its encoded bytes (`label` names them in error messages). */
export type ImageInput = { path: string } | { bytes: Uint8Array; label?: string };

export interface AskRequest {
  images: ImageInput[];
  question: string;
  options?: RunOptions;
}

/** Low-level request: prompt ids with `imagePlaceholder` (-200) where each image's features go. */
export interface GenerateIdsRequest {
  promptIds: number[];
  images: ImageInput[];
  options?: RunOptions;
}

export interface StepEvent {
  kind: 'step';
  block: number;
  step: number;
  /** Token ids of the current block; the MASK id marks positions still masked. */
  blockIds: number[];
  /** Text of the block with masked positions shown as `maskText`. */
  blockText: string;
}

export interface BlockEvent {
  kind: 'block';
  block: number;
  /** Generated ids committed so far. */
  ids: number[];
  /** Decoded answer so far (special tokens skipped). */
  text: string;
}

export type GenerationEvent = StepEvent | BlockEvent;

/** How `StepEvent.blockText` shows a still-masked position. */
export const MASK_TEXT = '░';

export interface ForwardCounts {
  prefill: number;
  /** Denoising passes, fused ones included. */
  denoise: number;
  /** Stand-alone commit passes (0 with fused commit, where commits ride along with the next block's first pass). */
  commit: number;
  /** Denoising passes that also committed the previous block (fused commit). */
  fusedCommits?: number;
  /**
   * Verified multi-step decoding: drafted states sent along in denoising passes, those the real steps reached, and
   * those the steps checked (the accepted ones and each pass's first rejected one, which drops the rest):
   * accepted / checked is the acceptance rate.
   */
  draftsVerified?: number;
  draftsAccepted?: number;
  draftsChecked?: number;
}

export interface GenerationStats {
  /** Positions of the prompt as the model saw it (image rows included). */
  promptTokens?: number;
  generatedTokens: number;
  forwards: ForwardCounts;
  tokensPerForward: number;
  /** States per denoising forward this run used (verified multi-step decoding; 1 = one state) and why. */
  verify: { k: number; reason: string };
  timings: { visionMs: number; prefillMs: number; decodeMs: number; totalMs: number; ortRunMs: number };
  cache: {
    visionHit: boolean;
    prefixHit: boolean;
    /** Prompt positions whose K/V were reused from the previous run (0 on a miss). */
    prefixReusedTokens?: number;
  };
  /**
   * Past K/V handed to ONNX Runtime from host memory, summed over the run's decoder passes: read in place by the
   * CPU provider, copied to the device on every pass by CUDA, DirectML and Core ML; 0 on WebGPU, where the cache
   * stays on the device.
   */
  io?: { pastKvHostBytes: number; pastKvHostRuns: number };
}

export interface GenerationResult {
  /** Exactly maxNewTokens ids, as the official code returns them (MASK fill kept). */
  outputIds: number[];
  text: string;
  stats: GenerationStats;
}

export interface RunControls {
  signal?: AbortSignal;
  /** Emit step events (costs a decode per step). Block events are always emitted. */
  steps?: boolean;
  onEvent?: (event: GenerationEvent) => void;
}

export interface EngineInfo {
  modelDir: string;
  architecture: string;
  precision: string;
  /** The provider actually in use, and why (e.g. "cuda unavailable: …; fell back to cpu"). */
  provider: string;
  providerReason: string;
  /** The decoder's runtime in use, and why (e.g. "llama.cpp unavailable: …; ONNX Runtime"). */
  backend: 'onnx' | 'llama.cpp';
  backendReason: string;
}

/** Error raised when a run is cancelled through its AbortSignal. */
export class CancelledError extends DiffusionVLError {
  constructor() {
    super('cancelled', 'generation cancelled');
    this.name = 'CancelledError';
  }
}

/** A problem with the caller's input, message user-facing: an unreadable/oversized image (the default kind), bad
 * options or an unusable prompt. */
export class InputError extends DiffusionVLError {
  constructor(message: string, kind: 'image' | 'options' | 'prompt' = 'image') {
    super(kind, message);
    this.name = 'InputError';
  }
}

export interface Engine {
  readonly info: EngineInfo;
  ask(req: AskRequest, controls?: RunControls): Promise<GenerationResult>;
  generateIds(req: GenerateIdsRequest, controls?: RunControls): Promise<GenerationResult>;
  /** Frees sessions and the worker. */
  dispose(): Promise<void>;
}
