import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { koffi, type Koffi } from './koffi';
import { GGML_LIBRARY_VERSION, LLAMA_LIBRARY_VERSION, LLAMA_PACKAGE_VERSION, libraryPackages } from './pinned';
import { Batch, ContextParams, GGML_LOG_LEVEL, ModelParams, QuantizeParams, checkLayouts } from './structs';

/**
 * Loading llama.cpp's prebuilt shared libraries (npm `@node-llama-cpp/<platform>`) through koffi, and the typed
 * functions this backend calls. Every way this can fail — no package for this platform, a file missing, a library
 * that does not load, another build's version or struct layout — is a `LlamaUnavailableError` with a plain reason,
 * raised before any call that could take the process down: the engine then runs on ONNX Runtime and says why.
 */
export class LlamaUnavailableError extends Error {
  override readonly name = 'LlamaUnavailableError';
}

/** Where the library's log lines go: debug and info lines are the bulk (≈ 1,600 per model load). */
export type LlamaLogSink = (level: 'debug' | 'info' | 'warn' | 'error', text: string) => void;

export interface LlamaLoadOptions {
  /** Directory holding the libraries (default: $DIFFUSIONVL_LLAMA_LIB_DIR, else the first installed package of `libraryPackages()`). */
  libraryDir?: string;
  /** Pins a CPU variant (`icelake`, `haswell`, …) instead of the library's own pick, e.g. to avoid AMX. */
  cpuVariant?: string;
  /** Prefer a package without GPU backends (the user asked for the CPU). */
  cpuOnly?: boolean;
  log?: LlamaLogSink;
}

/** The environment variable that pins a CPU variant when no option does. */
export const CPU_VARIANT_ENV = 'DIFFUSIONVL_LLAMA_CPU_VARIANT';
/** The environment variable that names the library folder when no option does (another build, a CUDA package elsewhere). */
export const LIBRARY_DIR_ENV = 'DIFFUSIONVL_LLAMA_LIB_DIR';
/** Where this process (any of its threads) loaded the library from: every later load takes the same folder. */
const LOADED_DIR_ENV = 'DIFFUSIONVL_LLAMA_LOADED_DIR';

export interface LlamaDeviceInfo {
  index: number;
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'meta';
  /** Opaque ggml_backend_dev_t. */
  handle: unknown;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- koffi functions are untyped at the boundary; the wrapper below types them */
type Fn = ((...args: any[]) => any) & { async: (...args: any[]) => void };

export interface LlamaLibrary {
  readonly dir: string;
  readonly llamaVersion: string;
  readonly ggmlVersion: string;
  /** The CPU variant pinned, if any (otherwise ggml picked the best one for this CPU). */
  readonly cpuVariant: string | null;
  readonly devices: LlamaDeviceInfo[];
  readonly fn: LlamaFunctions;
  /** Routes the library's log to `sink` (one process-wide callback; the latest sink wins; none: warnings and errors to stderr). */
  setLogSink(sink: LlamaLogSink | undefined): void;
  /** One more model of this thread logs through the callback (pair with detachLog). */
  holdLog(): void;
  /**
   * A model no longer needs the callback; the last one hands the log back to the library's own stderr log (before
   * this thread's JS context goes away). Models still open keep it: their lines stay filtered.
   */
  detachLog(): void;
}

export interface LlamaFunctions {
  llama_model_default_params: Fn;
  llama_context_default_params: Fn;
  llama_model_quantize_default_params: Fn;
  llama_model_load_from_file: Fn;
  llama_model_free: Fn;
  llama_init_from_model: Fn;
  llama_free: Fn;
  llama_model_n_embd: Fn;
  llama_model_n_layer: Fn;
  llama_model_n_ctx_train: Fn;
  llama_model_get_vocab: Fn;
  llama_vocab_n_tokens: Fn;
  llama_tokenize: Fn;
  llama_model_desc: Fn;
  llama_n_ctx: Fn;
  llama_n_batch: Fn;
  llama_n_ubatch: Fn;
  llama_n_seq_max: Fn;
  llama_batch_init: Fn;
  llama_batch_free: Fn;
  llama_decode: Fn;
  llama_get_logits_ith: Fn;
  llama_get_memory: Fn;
  llama_memory_clear: Fn;
  llama_memory_seq_rm: Fn;
  llama_memory_seq_cp: Fn;
  llama_memory_seq_keep: Fn;
  llama_memory_seq_pos_min: Fn;
  llama_memory_seq_pos_max: Fn;
  llama_set_causal_attn: Fn;
  llama_set_n_threads: Fn;
  llama_model_quantize: Fn;
  llama_print_system_info: Fn;
}

const LogCallback = koffi.proto('void diffusionvl_llama_log_cb(int level, const char *text, void *user_data)');

let loaded: LlamaLibrary | null = null;
let loadedKey = '';

/**
 * Loads (once per process: a shared library cannot really be unloaded) and checks the library. A second call with
 * other options while one is loaded is refused, since ggml's backends are process-wide.
 */
export function loadLlamaLibrary(options: LlamaLoadOptions = {}): LlamaLibrary {
  const cpuVariant = options.cpuVariant ?? (process.env[CPU_VARIANT_ENV] || undefined);
  // Whatever package another thread of this process loaded first: a second package is a second copy of ggml, and a
  // worker loading it again after another one ended aborts the process (a GGML_ASSERT in ggml's static init). The
  // record is an environment variable because the engine's and converter's workers share the environment (SHARE_ENV).
  const dir = options.libraryDir ?? (process.env[LIBRARY_DIR_ENV] || process.env[LOADED_DIR_ENV] || findLibraryDir(options.cpuOnly ?? false));
  const key = `${dir}\0${cpuVariant ?? ''}`;
  if (loaded) {
    if (key !== loadedKey) throw new LlamaUnavailableError(`llama.cpp is already loaded from ${loaded.dir}${loaded.cpuVariant ? ` (CPU variant ${loaded.cpuVariant})` : ''} in this process; restart to load another build or variant`);
    loaded.setLogSink(options.log);
    return loaded;
  }
  loaded = openLibrary(dir, cpuVariant, options.log);
  loadedKey = key;
  process.env[LOADED_DIR_ENV] = dir;
  return loaded;
}

/** The directory of the first installed library package for this platform. */
export function findLibraryDir(cpuOnly: boolean): string {
  const packages = libraryPackages();
  if (!packages.length) throw new LlamaUnavailableError(`no prebuilt llama.cpp library exists for ${process.platform}-${process.arch}`);
  // A GPU package carries the CPU libraries too; when the CPU was asked for, prefer the package without a GPU backend.
  const order = cpuOnly ? [...packages].reverse() : packages;
  for (const name of order) {
    // The packages export no package.json: look along node_modules like require would.
    for (const base of require.resolve.paths(`@node-llama-cpp/${name}`) ?? []) {
      const dir = join(base, '@node-llama-cpp', name, 'bins', name);
      if (existsSync(dir)) return dir;
    }
  }
  throw new LlamaUnavailableError(`the llama.cpp library package is not installed (npm package @node-llama-cpp/${packages[packages.length - 1]}@${LLAMA_PACKAGE_VERSION}; run npm ci)`);
}

const LIB = {
  base: /^(lib)?ggml-base\.(so|dylib|dll)$/,
  ggml: /^(lib)?ggml(\.[a-z0-9]+)?\.v[\d.]+\.(so|dylib|dll)$/,
  llama: /^(lib)?llama(\.[a-z0-9]+)?\.v[\d.]+\.(so|dylib|dll)$/,
  cpuVariant: /^(lib)?ggml-cpu-([a-z0-9_]+)\.(so|dll)$/,
  gpuBackend: /^(lib)?ggml-(?!cpu-|base)([a-z0-9]+)\.(so|dll)$/,
};

function openLibrary(dir: string, cpuVariant: string | undefined, log: LlamaLogSink | undefined): LlamaLibrary {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    throw new LlamaUnavailableError(`the llama.cpp library folder ${dir} does not exist`);
  }
  const pick = (re: RegExp, what: string): string => {
    const f = files.find((n) => re.test(n));
    if (!f) throw new LlamaUnavailableError(`the llama.cpp library folder ${dir} has no ${what} library`);
    return join(dir, f);
  };
  const basePath = pick(LIB.base, 'ggml-base');
  const ggmlPath = pick(LIB.ggml, 'ggml');
  const llamaPath = pick(LIB.llama, 'llama');
  const variants = files.map((n) => LIB.cpuVariant.exec(n)?.[2]).filter((v): v is string => !!v);
  if (cpuVariant && !variants.includes(cpuVariant)) {
    throw new LlamaUnavailableError(`CPU variant "${cpuVariant}" is not in this llama.cpp build (it has: ${variants.join(', ')})`);
  }

  // Dependencies first, by absolute path (Windows does not look for a DLL's dependencies in its own folder).
  let base: Koffi.LibraryHandle, ggml: Koffi.LibraryHandle, llama: Koffi.LibraryHandle;
  try {
    base = koffi.load(basePath);
    ggml = koffi.load(ggmlPath);
    llama = koffi.load(llamaPath);
  } catch (err) {
    throw new LlamaUnavailableError(`the llama.cpp library failed to load: ${firstLine(err)}`);
  }

  const fn = <T extends Fn>(lib: Koffi.LibraryHandle, decl: string): T => {
    try {
      return lib.func(decl) as unknown as T;
    } catch (err) {
      throw new LlamaUnavailableError(`the llama.cpp library lacks a function this backend needs (${firstLine(err)}): not the pinned build ${LLAMA_PACKAGE_VERSION}`);
    }
  };

  // Versions before anything else: another build's structs must never be passed.
  const llamaVersion = String(fn(llama, 'const char *llama_version(void)')());
  const ggmlVersion = String(fn(base, 'const char *ggml_version(void)')());
  if (llamaVersion.replace(/-dev$/, '') !== LLAMA_LIBRARY_VERSION || ggmlVersion !== GGML_LIBRARY_VERSION) {
    throw new LlamaUnavailableError(
      `the llama.cpp library in ${dir} is version ${llamaVersion} (ggml ${ggmlVersion}); this build of DiffusionVL needs ${LLAMA_LIBRARY_VERSION} (ggml ${GGML_LIBRARY_VERSION}) from @node-llama-cpp packages ${LLAMA_PACKAGE_VERSION}`,
    );
  }

  const f: LlamaFunctions = {
    llama_model_default_params: fn(llama, 'llama_model_params llama_model_default_params(void)'),
    llama_context_default_params: fn(llama, 'llama_context_params llama_context_default_params(void)'),
    llama_model_quantize_default_params: fn(llama, 'llama_model_quantize_params llama_model_quantize_default_params(void)'),
    llama_model_load_from_file: fn(llama, 'void *llama_model_load_from_file(const char *path, llama_model_params params)'),
    llama_model_free: fn(llama, 'void llama_model_free(void *model)'),
    llama_init_from_model: fn(llama, 'void *llama_init_from_model(void *model, llama_context_params params)'),
    llama_free: fn(llama, 'void llama_free(void *ctx)'),
    llama_model_n_embd: fn(llama, 'int32_t llama_model_n_embd(void *model)'),
    llama_model_n_layer: fn(llama, 'int32_t llama_model_n_layer(void *model)'),
    llama_model_n_ctx_train: fn(llama, 'int32_t llama_model_n_ctx_train(void *model)'),
    llama_model_get_vocab: fn(llama, 'void *llama_model_get_vocab(void *model)'),
    llama_vocab_n_tokens: fn(llama, 'int32_t llama_vocab_n_tokens(void *vocab)'),
    llama_tokenize: fn(llama, 'int32_t llama_tokenize(void *vocab, const char *text, int32_t text_len, _Out_ int32_t *tokens, int32_t n_tokens_max, bool add_special, bool parse_special)'),
    llama_model_desc: fn(llama, 'int32_t llama_model_desc(void *model, _Out_ uint8_t *buf, size_t buf_size)'),
    llama_n_ctx: fn(llama, 'uint32_t llama_n_ctx(void *ctx)'),
    llama_n_batch: fn(llama, 'uint32_t llama_n_batch(void *ctx)'),
    llama_n_ubatch: fn(llama, 'uint32_t llama_n_ubatch(void *ctx)'),
    llama_n_seq_max: fn(llama, 'uint32_t llama_n_seq_max(void *ctx)'),
    llama_batch_init: fn(llama, 'llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max)'),
    llama_batch_free: fn(llama, 'void llama_batch_free(llama_batch batch)'),
    llama_decode: fn(llama, 'int32_t llama_decode(void *ctx, llama_batch batch)'),
    llama_get_logits_ith: fn(llama, 'float *llama_get_logits_ith(void *ctx, int32_t i)'),
    llama_get_memory: fn(llama, 'void *llama_get_memory(void *ctx)'),
    llama_memory_clear: fn(llama, 'void llama_memory_clear(void *mem, bool data)'),
    llama_memory_seq_rm: fn(llama, 'bool llama_memory_seq_rm(void *mem, int32_t seq_id, int32_t p0, int32_t p1)'),
    llama_memory_seq_cp: fn(llama, 'void llama_memory_seq_cp(void *mem, int32_t src, int32_t dst, int32_t p0, int32_t p1)'),
    llama_memory_seq_keep: fn(llama, 'void llama_memory_seq_keep(void *mem, int32_t seq_id)'),
    llama_memory_seq_pos_min: fn(llama, 'int32_t llama_memory_seq_pos_min(void *mem, int32_t seq_id)'),
    llama_memory_seq_pos_max: fn(llama, 'int32_t llama_memory_seq_pos_max(void *mem, int32_t seq_id)'),
    llama_set_causal_attn: fn(llama, 'void llama_set_causal_attn(void *ctx, bool causal)'),
    llama_set_n_threads: fn(llama, 'void llama_set_n_threads(void *ctx, int32_t n_threads, int32_t n_threads_batch)'),
    llama_model_quantize: fn(llama, 'uint32_t llama_model_quantize(const char *fname_inp, const char *fname_out, const llama_model_quantize_params *params)'),
    llama_print_system_info: fn(llama, 'const char *llama_print_system_info(void)'),
  };

  const problems = checkLayouts(f.llama_model_default_params(), f.llama_context_default_params(), f.llama_model_quantize_default_params());
  if (problems.length) {
    throw new LlamaUnavailableError(`the llama.cpp library's structs do not match the pinned header (${problems.slice(0, 3).join('; ')}): not the build ${LLAMA_PACKAGE_VERSION}`);
  }

  // The log callback goes in before any backend is loaded (loading logs). A callback entered from another thread
  // waits for this thread's event loop: calls that can log from worker threads (model load, decode) are made async.
  let sink = log ?? stderrSink;
  let logHolders = 0;
  const callback = koffi.register((level: number, text: string) => {
    if (!sink || !text) return;
    const line = text.replace(/\n$/, '');
    let kind: Parameters<LlamaLogSink>[0] = level === GGML_LOG_LEVEL.error ? 'error' : level === GGML_LOG_LEVEL.warn ? 'warn' : level === GGML_LOG_LEVEL.info ? 'info' : 'debug';
    if (kind === 'warn' && BENIGN_WARNINGS.some((re) => re.test(line))) kind = 'info';
    sink(kind, line);
  }, koffi.pointer(LogCallback));
  const logSet = fn(llama, 'void llama_log_set(diffusionvl_llama_log_cb *cb, void *user_data)');
  logSet(callback, null);

  const devCount = fn(ggml, 'size_t ggml_backend_dev_count(void)');
  // ggml's backend registry is process-wide: an engine worker started after another one finds it filled.
  if (Number(devCount()) === 0) {
    const backendLoad = fn(ggml, 'void *ggml_backend_load(const char *path)');
    if (cpuVariant) {
      // ggml_backend_load does not check the CPU: a variant built for instructions this CPU lacks would die on SIGILL.
      const variantPath = files.map((n) => join(dir, n)).find((p) => LIB.cpuVariant.exec(p.slice(dir.length + 1))?.[2] === cpuVariant)!;
      let score = 0;
      try {
        score = Number(koffi.load(variantPath).func('int ggml_backend_score(void)')());
      } catch (err) {
        throw new LlamaUnavailableError(`CPU variant "${cpuVariant}" failed to load: ${firstLine(err)}`);
      }
      if (score <= 0) throw new LlamaUnavailableError(`CPU variant "${cpuVariant}" needs instructions this CPU does not have`);
      for (const n of files) if (LIB.gpuBackend.test(n)) backendLoad(join(dir, n));
      if (!backendLoad(variantPath)) throw new LlamaUnavailableError(`CPU variant "${cpuVariant}" failed to register`);
    } else {
      fn(ggml, 'void ggml_backend_load_all_from_path(const char *dir)')(dir);
    }
  }
  fn(llama, 'void llama_backend_init(void)')();

  const devGet = fn(ggml, 'void *ggml_backend_dev_get(size_t i)');
  const devName = fn(base, 'const char *ggml_backend_dev_name(void *dev)');
  const devDescription = fn(base, 'const char *ggml_backend_dev_description(void *dev)');
  const devType = fn(base, 'int ggml_backend_dev_type(void *dev)');
  const types = ['cpu', 'gpu', 'igpu', 'accel', 'meta'] as const;
  const devices: LlamaDeviceInfo[] = [];
  for (let i = 0; i < Number(devCount()); i++) {
    const handle = devGet(i);
    devices.push({ index: i, name: String(devName(handle)), description: String(devDescription(handle) ?? ''), type: types[Number(devType(handle))] ?? 'accel', handle });
  }
  if (!devices.some((d) => d.type === 'cpu')) throw new LlamaUnavailableError('llama.cpp found no CPU backend it can run on this machine');

  return {
    dir,
    llamaVersion,
    ggmlVersion,
    cpuVariant: cpuVariant ?? null,
    devices,
    fn: f,
    setLogSink(s) {
      sink = s ?? stderrSink;
      logSet(callback, null);
    },
    holdLog() {
      logHolders++;
    },
    detachLog() {
      if (logHolders > 0 && --logHolders > 0) return;
      // The callback belongs to this thread's JS context: once it ends, the library must not call it.
      logSet(null, null);
    },
  };
}

export { Batch, ContextParams, ModelParams, QuantizeParams };

/**
 * Warnings the library prints for every Qwen2 model, ours and the official GGUFs alike, that ask nothing of the user:
 * kept as info. (Qwen's vocabulary holds `</s>` as an ordinary token, which llama.cpp's load check calls "probably a
 * bug in the model".)
 */
const BENIGN_WARNINGS = [/control-looking token: \d+ '<\/s>' was not control-type/];

/** Without a sink of the caller's: the library's warnings and errors on stderr, its chatter dropped. */
const stderrSink: LlamaLogSink = (level, text) => {
  if (level === 'warn' || level === 'error') process.stderr.write(`llama.cpp ${level}: ${text}\n`);
};

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
}
