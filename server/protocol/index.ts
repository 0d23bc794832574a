/**
 * The DiffusionVL sidecar protocol: every custom method name and its params/result types, shared by the VS Code
 * client and the server. Standard LSP features (hover, code actions, progress, cancellation) are used as LSP defines
 * them; only their `data` payloads are typed here.
 *
 * Free of jsonrpc imports: the client (vscode-languageclient 11) and the server (vscode-languageserver 10) ship
 * different vscode-jsonrpc copies whose `RequestType` classes are not interchangeable, so method names are plain
 * strings and {@link Requests} / {@link Notifications} type each method's params and result (type-only). The only
 * runtime imports are two constants the engine owns and clients must agree on: the image byte limit and the name of a
 * converted model's manifest.
 */
import type { ErrorKind } from '../engine/errors';
import type { DecoderBackend, ExecutionProvider } from '../engine/api';
import type { GenerationOptions, RemaskingStrategy, VerifySteps } from '../engine/generationOptions';
import type { DecoderKind, GgufType, Precision } from '../engine/manifest';

export type { DecoderBackend, DecoderKind, ErrorKind, ExecutionProvider, GenerationOptions, GgufType, Precision, RemaskingStrategy };
/** Largest image (encoded file or decoded base64 payload) the server accepts, in bytes. */
export { MAX_IMAGE_BYTES } from '../engine/image/limits';
/** The file a converted model folder is recognised by. */
export { MANIFEST_FILE } from '../engine/manifestFile';

export const PROTOCOL_VERSION = 1;

/** How the language server and the MCP server name themselves to clients (the version is package.json's; a test checks). */
export const SERVER_INFO = { name: 'diffusionvl', version: '0.1.0' } as const;

/**
 * Instructions the client and server send on the user's behalf (hovers, alt text, "describe and insert"). A plain
 * "Describe the image." works with the released models and is also what the small embedded model was trained on;
 * both are settings on the server side.
 */
export const DefaultPrompts = {
  describe: 'Describe the image.',
  altText: 'Describe the image.',
} as const;

/** Custom method names. Requests go client → server; notifications go server → client. */
export const Methods = {
  /** Request: answer a question about one image. {@link AskParams} → {@link AskResult}. */
  ask: 'diffusionvl/ask',
  /** Request: model, provider, memory, queue. `null` params → {@link StatusResult}. */
  status: 'diffusionvl/status',
  /** Request: download (or take a local) checkpoint and convert it. {@link PrepareModelParams} → {@link PrepareModelResult}. */
  prepareModel: 'diffusionvl/prepareModel',
  /** Request: unload the model now (it reloads on next use). `null` → `null`. */
  unloadModel: 'diffusionvl/unloadModel',
  /** Notification: streamed text of a running ask. {@link PartialAnswerParams}. */
  partialAnswer: 'diffusionvl/partialAnswer',
  /** Notification: sent on every status change. {@link StatusResult}. */
  statusChanged: 'diffusionvl/statusChanged',
} as const;

export type MethodName = (typeof Methods)[keyof typeof Methods];

/** Params and result of every custom request, by method: the client's `request` and the server's handlers are
 * typed from this map. */
export interface Requests {
  [Methods.ask]: { params: AskParams; result: AskResult };
  [Methods.status]: { params: null; result: StatusResult };
  [Methods.prepareModel]: { params: PrepareModelParams; result: PrepareModelResult };
  [Methods.unloadModel]: { params: null; result: null };
}

/** Params of every custom server → client notification, by method. */
export interface Notifications {
  [Methods.partialAnswer]: PartialAnswerParams;
  [Methods.statusChanged]: StatusResult;
}

export type RequestMethod = keyof Requests;
export type ParamsOf<M extends RequestMethod> = Requests[M]['params'];
export type ResultOf<M extends RequestMethod> = Requests[M]['result'];
export type NotificationMethod = keyof Notifications;

/** Environment variable holding the remote server's API key when the sidecar starts (sent as a Bearer token). */
export const SERVER_API_KEY_ENV = 'DIFFUSIONVL_SERVER_API_KEY';

/** `workspace/configuration` section and `didChangeConfiguration` key holding {@link ServerSettings}. */
export const SETTINGS_SECTION = 'diffusionvl';

/** LSP progress token (same shape as the LSP `ProgressToken`). */
export type ProgressToken = number | string;

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces

/** An image: an absolute filesystem path (must lie inside a workspace folder when the client has any), a `file:` URI,
 * or the raw encoded file (PNG, JPEG, WebP, GIF, …) as base64. */
export type ImageSource = { path: string } | { uri: string } | { bytes: string };

// ---------------------------------------------------------------------------------------------------------------
// diffusionvl/ask

export interface AskParams {
  image: ImageSource;
  question: string;
  options?: GenerationOptions;
  /** When set, `diffusionvl/partialAnswer` notifications carrying this token stream the answer. */
  streamToken?: ProgressToken;
  /** Also stream every denoising step's block state (costs a decode per step). */
  streamSteps?: boolean;
  /** LSP work-done progress: begin/report(text so far)/end. */
  workDoneToken?: ProgressToken;
  /** LSP partial results: `$/progress` values are {@link AskPartial}. The final response is still the full result. */
  partialResultToken?: ProgressToken;
}

export interface AskStats {
  /** Prompt positions, image rows included (HTTP `usage.prompt_tokens`). */
  promptTokens?: number;
  generatedTokens: number;
  forwards: { prefill: number; denoise: number; commit: number; total: number };
  tokensPerForward: number;
  /** Verified multi-step decoding: states per denoising forward, drafted states sent along and those accepted. */
  verifySteps: number;
  drafts: { verified: number; accepted: number };
  timings: { queueMs: number; loadMs: number; visionMs: number; prefillMs: number; decodeMs: number; totalMs: number };
  cache: { visionHit: boolean; prefixHit: boolean };
}

export interface AskResult {
  text: string;
  /** The DiffusionVL model's own statistics: always from the local model; from a remote server only when it is a
   * `diffusionvl serve --http` that sends them (another OpenAI-compatible server has none). */
  stats?: AskStats;
  /** The model folder that answered, or the model name a remote server reported. */
  model: string;
  /** The URL of the remote server that answered (absent when the local model did). */
  server?: string;
}

/** One streamed update: a committed block (`text` = answer so far) or, with `streamSteps`, a step's block state. */
export interface AskPartial {
  kind: 'block' | 'step';
  block: number;
  /** Step within the block (step events only). */
  step?: number;
  /** Committed answer so far. */
  text: string;
  /** Current block with masked positions shown (step events only). */
  blockText?: string;
}

export interface PartialAnswerParams extends AskPartial {
  token: ProgressToken;
}

// ---------------------------------------------------------------------------------------------------------------
// diffusionvl/status

export type ModelState = 'none' | 'unloaded' | 'loading' | 'ready' | 'error';

export interface StatusResult {
  protocolVersion: number;
  model: {
    state: ModelState;
    /** The converted-model folder in use: the `modelPath` setting, else the embedded default model. */
    dir?: string;
    /** Where `dir` came from: the `modelPath` setting, or the embedded default model (`models/default`) because
     * nothing is configured. */
    source?: 'setting' | 'default';
    /** The manifest's architecture (see {@link architectureLabel}). */
    architecture?: string;
    precision?: string;
    /** Last load error (state `error`). */
    error?: string;
    idleUnloadMinutes: number;
  };
  provider: {
    requested: ExecutionProvider;
    /** Provider actually in use once loaded, and why (e.g. a fallback to cpu). */
    inUse?: string;
    reason?: string;
  };
  /** Present while `server.url` is set: every answer comes from that server, not from the local model. */
  remote?: RemoteStatus;
  /** The text decoder's runtime: requested, in use once loaded, and why (e.g. llama.cpp unavailable). */
  backend: {
    requested: DecoderBackend;
    inUse?: 'onnx' | 'llama.cpp';
    reason?: string;
  };
  memory: { rssBytes: number; heapUsedBytes: number; externalBytes: number };
  queue: QueueStats;
  /** How the last answer decoded (absent before the first): verified multi-step decoding's K and why, its yield. */
  decoding?: DecodingStatus;
  download?: DownloadStatus;
}

export interface DecodingStatus {
  verifySteps: number;
  /** `set`, or auto's measured costs and acceptance rate. */
  reason: string;
  tokensPerForward: number;
  draftsVerified: number;
  draftsAccepted: number;
}

export interface RemoteStatus {
  /** The server's base URL as configured (never with its key). */
  url: string;
  /** Whether a key is set for it (the key itself never leaves the sidecar). */
  hasKey: boolean;
  /** False until the user allowed images to be sent to this (non-loopback) server; nothing is sent before. */
  allowed: boolean;
  /** The model the server last answered with (or listed), once known. */
  model?: string;
  /** How the last request to it went: `ok`, or with {@link RemoteStatus.error}: `unreachable` (not reached, or
   * cut off), `refused` (the API key), `failed` (an error answer). */
  state: 'unknown' | 'ok' | 'unreachable' | 'refused' | 'failed';
  error?: string;
}

/** The server's inference queue: interactive requests go before hovers. */
export interface QueueStats {
  running: number;
  waitingInteractive: number;
  waitingHover: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export interface DownloadStatus {
  repo: string;
  phase: 'listing' | 'downloading' | 'verifying' | 'converting' | 'done' | 'failed';
  file?: string;
  bytesDone: number;
  bytesTotal: number;
}

// ---------------------------------------------------------------------------------------------------------------
// diffusionvl/prepareModel

/** Releases this server can convert and run. */
export const SUPPORTED_REPOS = ['hustvl/DiffusionVL-Qwen2.5VL-3B', 'hustvl/DiffusionVL-Qwen2.5VL-7B', 'hustvl/DiffusionVL-Qwen2.5-7B'] as const;
export const DEFAULT_REPO = SUPPORTED_REPOS[0];

/** How the status shows a converted model's architecture. */
export function architectureLabel(architecture: string): string {
  if (architecture === 'diffusionvl_qwenvl') return 'DiffusionVL-QwenVL (Qwen2.5-VL vision)';
  if (architecture === 'diffusionvl_qwen') return 'DiffusionVL-Qwen (SigLIP vision, anyres tiles)';
  return architecture;
}
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface PrepareModelParams {
  /** Folder the client owns (e.g. the extension's global storage); checkpoints and models go below it. */
  storageDir: string;
  /** Hugging Face repo id (default {@link DEFAULT_REPO}). */
  repo?: string;
  revision?: string;
  /** Hub endpoint: a mirror or an air-gapped host (default {@link DEFAULT_ENDPOINT}). */
  endpoint?: string;
  /** Bearer token for gated/private hubs. */
  hfToken?: string;
  /** Convert this local checkpoint folder instead of downloading. */
  localCheckpoint?: string;
  /** Which text decoder to convert to (`convert --decoder`). With neither this nor `precision`, the server picks what
   * this machine runs fastest: a llama.cpp GGUF (F16 on a GPU, Q4_K_M on the CPU) when the library loads, else
   * ONNX fp16. */
  decoder?: DecoderKind;
  /** `convert --precision` for that decoder: fp32|fp16|int4 (onnx, the default decoder when only this is given) or
   * fp32|fp16|q8_0|q4_0|q4_k_m (gguf, both). */
  precision?: Precision | GgufType;
  /** Make the converted model the active one (default true). */
  activate?: boolean;
  workDoneToken?: ProgressToken;
}

export interface PrepareModelResult {
  modelDir: string;
  checkpointDir: string;
  files: number;
  downloadedBytes: number;
  /** Files that continued from a partial download (HTTP Range). */
  resumedFiles: number;
  /** Files fetched again after failing hash verification. */
  refetchedFiles: number;
  /** False when an up-to-date converted model was already there. */
  converted: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Settings (initializationOptions.settings and didChangeConfiguration `settings.diffusionvl`)

/**
 * The server's settings, named as the user's `diffusionvl.*` settings are. Clients may send any subset, nested
 * objects included (`{ hover: { enabled: false } }`); the server keeps one store and applies each update over it.
 */
export interface ServerSettings {
  /** Converted model folder (from `diffusionvl convert` or prepareModel). Empty: the embedded default model. */
  modelPath?: string;
  executionProvider: ExecutionProvider;
  /** The text decoder's runtime (`auto`: llama.cpp when the model folder has a GGUF decoder, else ONNX Runtime). */
  backend: DecoderBackend;
  /** ONNX Runtime intra-op threads (default: ORT's choice). */
  threads?: number;
  /** Unload the model after this many idle minutes; 0 = never. */
  idleUnloadMinutes: number;
  /** Generation defaults for requests that leave them out (a request's `options` win); unset: the engine's. */
  steps?: number;
  /** The remasking strategy (`options.strategy` on a request). */
  remasking?: RemaskingStrategy;
  /** Threshold of the dynamic strategy (`options.threshold` on a request). */
  confidenceThreshold?: number;
  /** Longest answer, in tokens (hovers and alt text have their own budgets below). */
  maxNewTokens?: number;
  /**
   * Denoising states per forward, verified multi-step decoding (`options.verifySteps`): `auto` or K (1 = one state
   * per forward); integers may come as strings, as the `diffusionvl.verifySteps` setting's values are.
   */
  verifySteps?: VerifySteps;
  hover: { enabled: boolean; prompt: string; maxNewTokens: number };
  altText: { prompt: string; maxChars: number; maxNewTokens: number };
  /**
   * A shared OpenAI-compatible server (e.g. `diffusionvl serve --http`) that answers instead of the local model
   * while `url` is set (empty: the local model). `model` names the server's model to ask (empty: the first one its
   * `/v1/models` lists). `allowed` is the user's consent to send images to it: the client
   * asks once per URL; loopback URLs need none. Its API key is not a setting: it reaches the sidecar in the
   * {@link SERVER_API_KEY_ENV} environment variable, so that it never appears in settings traffic or logs.
   */
  server: { url: string; model: string; allowed: boolean };
}

/** A partial settings update (any subset, nested objects too). */
export type SettingsUpdate = { [K in keyof ServerSettings]?: ServerSettings[K] extends object ? Partial<ServerSettings[K]> : ServerSettings[K] | null };

export interface InitializationOptions {
  settings?: SettingsUpdate;
}

// ---------------------------------------------------------------------------------------------------------------
// Code actions (standard textDocument/codeAction + codeAction/resolve; `data` is this)

export const CodeActionKinds = {
  altText: 'quickfix.diffusionvl.altText',
  describeComment: 'refactor.rewrite.diffusionvl.describe',
} as const;

export interface CodeActionData {
  kind: 'altText' | 'describeComment';
  uri: string;
  /** Document version the action was computed for; resolve fails if the document changed since. */
  version: number;
  /** Absolute path of the image. */
  imagePath: string;
  /** The reference as written and where it started, to find it again if the document changed. */
  target: string;
  offset: number;
}

/** Command a code action carries for clients without `codeAction/resolve` support; its one argument is the
 * {@link CodeActionData}; the server computes the edit and applies it with `workspace/applyEdit`. */
export const APPLY_DESCRIPTION_COMMAND = 'diffusionvl.applyImageDescription';

// ---------------------------------------------------------------------------------------------------------------
// Errors (ResponseError.code; `data` is {@link ErrorData})

export const ErrorCodes = {
  /** LSP RequestCancelled. */
  RequestCancelled: -32800,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Image unreadable, empty, truncated, corrupt, oversized or of an unsupported format. */
  InvalidImage: 1001,
  /** Path outside every workspace folder. */
  PathOutsideWorkspace: 1002,
  /** No model configured, or the folder is missing/corrupt. */
  ModelUnavailable: 1003,
  /** Too many requests waiting. */
  QueueFull: 1004,
  DownloadFailed: 1005,
  /** A checkpoint this server cannot run (e.g. the SigLIP variant). */
  UnsupportedModel: 1006,
  /** Not enough free disk space. */
  DiskFull: 1007,
  /** A generation option unknown or out of range. */
  InvalidOptions: 1008,
  /** Converting a checkpoint to ONNX failed. */
  ConversionFailed: 1009,
  /** The remote answering server (`server.url`) cannot be reached, refused the request, or is not allowed yet. */
  RemoteUnavailable: 1010,
} as const;

export type ErrorCodeName = keyof typeof ErrorCodes;

export interface ErrorData {
  /** The code's name. */
  code: ErrorCodeName;
  /** What went wrong, as decided where it was raised (absent for protocol-level errors such as a full queue). */
  kind?: ErrorKind;
}
