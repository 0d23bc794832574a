import { availableParallelism } from 'node:os';
import type { AttentionPattern } from '../../attention';
import type { DecodeRequest, DiffusionModel, HeadOutput, HiddenRows } from '../../diffusionModel';
import type { EmbeddingTable } from '../../embeddings';
import { DiffusionVLError } from '../../errors';
import type { KvCache } from '../../kvCache';
import type { ExecutionProvider } from '../../api';
import { BatchRefusedError, planPass, type PassChunk, type PassLimits } from './batchPlan';
import { chooseLlamaDevice } from './devices';
import { koffi } from './koffi';
import { LlamaUnavailableError, loadLlamaLibrary, type LlamaLibrary, type LlamaLoadOptions } from './library';
import { LLAMA_LOAD_MODE_NONE, LLAMA_SPLIT_MODE_NONE } from './structs';

export interface LlamaModelOptions extends LlamaLoadOptions {
  /** Which device: `cpu`, `cuda`, or a GPU through `auto`/`webgpu`/… (see devices.ts). */
  provider?: ExecutionProvider;
  threads?: number;
  /**
   * KV cells of the first context; `reserve` grows it to what a run needs (the cells and the library's attention
   * buffers scale with it: at the 3B widths 8192 cells hold 302 MB of f16 K/V).
   */
  contextLength?: number;
  /** Rows one library call takes; larger block-causal passes are split at block boundaries. */
  microBatch?: number;
  /** Sequence ids of the context: blocks per prefill call, groups per open pass. */
  sequences?: number;
  /** K/V storage: f32 for an F32 model (the reference), f16 otherwise (the library's default). */
  kvType?: 'f32' | 'f16';
  /**
   * Flash attention: the library decides, or off. Default: off with f32 K/V (the CPU's flash attention rounds
   * through f16: 0.03 off the reference logits of the tiny model, 2e-5 without it), else the library's choice.
   */
  flashAttention?: 'auto' | 'off';
}

/** The library's logits of the rows a pass was asked to output, copied into JS memory (Electron has no external buffers). */
interface LlamaHidden extends HiddenRows {
  logits: Float32Array;
}

const GGML_TYPE = { f32: 0, f16: 1 } as const;

/**
 * The Qwen2 text decoder and head of a GGUF file in llama.cpp, behind the engine's DiffusionModel seam. One context
 * whose unified KV cache is the engine's cache (`LlamaKvCache`); attention patterns become sequence ids over it
 * (batchPlan.ts). The head runs inside the pass, on the output rows only.
 */
export class LlamaModel implements DiffusionModel {
  readonly hiddenSize: number;
  readonly vocabSize: number;
  /** Where it runs and why (e.g. "auto: no hardware GPU found by llama.cpp; llama.cpp on the cpu"). */
  readonly device: string;
  readonly deviceReason: string;
  /** Time spent inside library calls (decode, logits copy). */
  libraryMs = 0;
  private causal: boolean | null = null;
  private cache: LlamaKvCache | null = null;
  private limits: PassLimits;
  private batchPtrs: { embd: unknown; pos: unknown; nSeqId: unknown; logits: unknown; seqIds: unknown[] };
  private released = false;

  private constructor(
    private lib: LlamaLibrary,
    private modelPtr: unknown,
    private ctx: unknown,
    private mem: unknown,
    private batch: Record<string, unknown>,
    limits: PassLimits,
    /** The context's parameters, for a larger context (reserve). */
    private ctxParams: Record<string, unknown>,
    /** The most cells a context may have: the model's training context. */
    readonly maxCells: number,
    private embeddings: EmbeddingTable,
    device: { label: string; reason: string },
  ) {
    const f = lib.fn;
    this.hiddenSize = Number(f.llama_model_n_embd(modelPtr));
    this.vocabSize = Number(f.llama_vocab_n_tokens(f.llama_model_get_vocab(modelPtr)));
    this.limits = limits;
    this.device = device.label;
    this.deviceReason = device.reason;
    this.batchPtrs = {
      embd: batch.embd,
      pos: batch.pos,
      nSeqId: batch.n_seq_id,
      logits: batch.logits,
      seqIds: koffi.decode(batch.seq_id, koffi.array('void *', limits.maxRows)) as unknown[],
    };
  }

  /**
   * Loads the library (or raises LlamaUnavailableError with the reason), the GGUF file and one context. Model
   * loading runs on koffi's worker thread: the library logs from it.
   */
  static async load(ggufPath: string, embeddings: EmbeddingTable, opts: LlamaModelOptions = {}): Promise<LlamaModel> {
    const lib = loadLlamaLibrary({ ...opts, cpuOnly: opts.cpuOnly ?? opts.provider === 'cpu' });
    lib.holdLog();
    try {
      return await LlamaModel.open(lib, ggufPath, embeddings, opts);
    } catch (err) {
      lib.detachLog();
      throw err;
    }
  }

  private static async open(lib: LlamaLibrary, ggufPath: string, embeddings: EmbeddingTable, opts: LlamaModelOptions): Promise<LlamaModel> {
    const f = lib.fn;
    const choice = chooseLlamaDevice(lib.devices, opts.provider ?? 'auto');
    const mp = f.llama_model_default_params();
    let devList: Buffer | null = null;
    if (choice.device) {
      // A NULL-terminated device list: the whole model on that one device.
      devList = Buffer.alloc(16);
      koffi.encode(devList, 'void *', choice.device.handle);
      mp.devices = devList;
      mp.n_gpu_layers = -1;
      mp.split_mode = LLAMA_SPLIT_MODE_NONE;
    } else {
      mp.n_gpu_layers = 0;
      // The CPU backend repacks quantised weights into buffers of its own; a memory-mapped file would keep its pages
      // resident beside them (3B Q4_0: peak RSS of a screenshot question 5.09 → 3.61 GiB without the map).
      mp.load_mode = LLAMA_LOAD_MODE_NONE;
    }
    const modelPtr = await callAsync(f.llama_model_load_from_file, ggufPath, mp);
    if (!modelPtr) throw new LlamaUnavailableError(`llama.cpp could not load ${ggufPath} (see the log)`);
    const microBatch = opts.microBatch ?? 512;
    // The library reserves at least one output per sequence within the micro-batch's outputs (an assert otherwise).
    const sequences = Math.min(256, microBatch, opts.sequences ?? 64);
    const threads = opts.threads ?? Math.max(1, Math.min(availableParallelism(), 8));
    const cp = f.llama_context_default_params() as Record<string, unknown>;
    // The training context, or 8192 for a model that declares less (a tiny test model): beyond it llama.cpp only warns.
    const maxCells = Math.max(8192, Number(f.llama_model_n_ctx_train(modelPtr)));
    Object.assign(cp, {
      n_ctx: Math.min(maxCells, opts.contextLength ?? 1024),
      n_batch: microBatch,
      n_ubatch: microBatch,
      n_seq_max: sequences,
      n_outputs_max_per_seq: 0,
      n_threads: threads,
      n_threads_batch: threads,
      type_k: GGML_TYPE[opts.kvType ?? 'f16'],
      type_v: GGML_TYPE[opts.kvType ?? 'f16'],
      flash_attn_type: (opts.flashAttention ?? (opts.kvType === 'f32' ? 'off' : 'auto')) === 'off' ? 0 : -1,
      embeddings: false,
      kv_unified: true,
      no_perf: true,
    });
    const ctx = f.llama_init_from_model(modelPtr, cp);
    if (!ctx) {
      f.llama_model_free(modelPtr);
      throw new LlamaUnavailableError('llama.cpp could not create a context for this model (see the log)');
    }
    const hidden = Number(f.llama_model_n_embd(modelPtr));
    if (hidden !== embeddings.cols) {
      f.llama_free(ctx);
      f.llama_model_free(modelPtr);
      throw new LlamaUnavailableError(`the GGUF decoder's width ${hidden} is not the embedding table's ${embeddings.cols}`);
    }
    const limits = contextLimits(lib, ctx);
    const batch = f.llama_batch_init(limits.maxRows, hidden, limits.maxSeqs) as Record<string, unknown>;
    return new LlamaModel(lib, modelPtr, ctx, f.llama_get_memory(ctx), batch, limits, cp, maxCells, embeddings, choice);
  }

  /** The context's limits: rows and sequences per call, KV cells. */
  get passLimits(): PassLimits {
    return this.limits;
  }

  /**
   * Makes room for a run that needs `cells` KV cells: a context that is too small is replaced by one rounded up to
   * the next 1024 cells (never shrunk), which empties the cache. Sized to the runs it sees, the context's cells and
   * attention buffers stay small for the usual question instead of reserving the longest prompt up front.
   * Returns whether the cache was emptied.
   */
  async reserve(cells: number): Promise<boolean> {
    if (this.released) throw new DiffusionVLError('model', 'the llama.cpp model was released');
    if (cells <= this.limits.cells) return false;
    if (cells > this.maxCells) throw new DiffusionVLError('prompt', `this run needs ${cells} positions; the model's context holds ${this.maxCells}`);
    const f = this.lib.fn;
    const want = Math.min(this.maxCells, Math.ceil(cells / 1024) * 1024);
    // Free the old context first: both at once would double the peak this is here to lower.
    f.llama_free(this.ctx);
    this.cache?.forget();
    this.causal = null;
    const larger = { ...this.ctxParams, n_ctx: want };
    let ctx = f.llama_init_from_model(this.modelPtr, larger);
    const grown = !!ctx;
    if (!ctx) ctx = f.llama_init_from_model(this.modelPtr, this.ctxParams);
    if (!ctx) {
      this.released = true;
      throw new DiffusionVLError('model', `llama.cpp could not make a context of ${want} cells, nor the previous one (see the log)`);
    }
    this.ctx = ctx;
    this.mem = f.llama_get_memory(ctx);
    this.limits = contextLimits(this.lib, ctx);
    if (!grown) throw new DiffusionVLError('model', `llama.cpp could not make a context of ${want} cells for this run (see the log)`);
    this.ctxParams = larger;
    return true;
  }

  /** The context's cache (one per model: the library's KV cells are the engine's cache). */
  createCache(): KvCache {
    this.cache ??= new LlamaKvCache(this);
    return this.cache;
  }

  async decode(embeds: Float32Array, positions: number[], pattern: AttentionPattern, cache: KvCache | null, req: DecodeRequest): Promise<HiddenRows | null> {
    const h = this.hiddenSize;
    const n = positions.length;
    if (this.released) throw new DiffusionVLError('model', 'the llama.cpp model was released');
    if (cache && cache !== this.cache) throw new DiffusionVLError('model', 'decode: the cache belongs to another model');
    if (embeds.length !== n * h) throw this.refused(`${embeds.length} embedding values for ${n} rows of ${h}`);
    if (req.commitRows > 0 && !cache) throw this.refused('commitRows needs a cache');
    const out = req.outputRows;
    for (let k = 0; k < out.length; k++) {
      if (!Number.isInteger(out[k]) || out[k] < 0 || out[k] >= n || (k > 0 && out[k] <= out[k - 1])) throw this.refused(`output rows [${out.join(', ')}] of a pass of ${n}`);
    }
    const past = cache ? cache.length : 0;
    let chunks: PassChunk[];
    try {
      chunks = planPass(pattern, positions, past, req.commitRows, this.limits);
    } catch (err) {
      if (err instanceof BatchRefusedError) throw this.refused(err.message);
      throw err;
    }
    // Without a cache the pass still runs in the context: whatever a cache held there is gone.
    if (!cache && this.cache) this.cache.forget();
    if (!cache) this.lib.fn.llama_memory_clear(this.mem, true);
    const logits = new Float32Array(out.length * this.vocabSize);
    let outAt = 0;
    let kept = past;
    try {
      for (const chunk of chunks) outAt = await this.runChunk(embeds, positions, chunk, out, logits, outAt);
      kept = past + req.commitRows;
    } finally {
      // Drop every row that is not committed (all of the pass's rows when it failed: an earlier chunk of a split
      // prefill may have gone in); kept cells belong to sequence 0 alone again.
      const f = this.lib.fn;
      f.llama_memory_seq_rm(this.mem, -1, kept, -1);
      f.llama_memory_seq_keep(this.mem, 0);
      if (cache) this.cache!.setLength(kept);
      else f.llama_memory_clear(this.mem, true);
    }
    if (!out.length) return null;
    const hidden: LlamaHidden = { rows: out.length, logits };
    return hidden;
  }

  private async runChunk(embeds: Float32Array, positions: number[], c: PassChunk, out: readonly number[], logits: Float32Array, outAt: number): Promise<number> {
    const f = this.lib.fn;
    const h = this.hiddenSize;
    const p = this.batchPtrs;
    if (this.causal !== c.causal) {
      // Rebuilds the scheduler on the next call: only when it changes.
      f.llama_set_causal_attn(this.ctx, c.causal);
      this.causal = c.causal;
    }
    for (let s = 1; s <= c.extraSeqs; s++) f.llama_memory_seq_cp(this.mem, 0, s, -1, -1);
    koffi.encode(p.embd, 'float', embeds.subarray(c.start * h, (c.start + c.rows) * h), c.rows * h);
    koffi.encode(p.pos, 'int32_t', Int32Array.from(positions.slice(c.start, c.start + c.rows)), c.rows);
    koffi.encode(p.nSeqId, 'int32_t', Int32Array.from(c.seqIds, (ids) => ids.length), c.rows);
    for (let i = 0; i < c.rows; i++) koffi.encode(p.seqIds[i], 'int32_t', Int32Array.from(c.seqIds[i]), c.seqIds[i].length);
    const flags = new Int8Array(c.rows);
    const rowsOut: number[] = [];
    for (const r of out) {
      if (r >= c.start && r < c.start + c.rows) {
        flags[r - c.start] = 1;
        rowsOut.push(r);
      }
    }
    koffi.encode(p.logits, 'int8_t', flags, c.rows);
    const t0 = performance.now();
    const rc = Number(await callAsync(f.llama_decode, this.ctx, { ...this.batch, n_tokens: c.rows }));
    if (rc !== 0) {
      this.libraryMs += performance.now() - t0;
      throw new DiffusionVLError('model', `llama.cpp refused a decoder pass of ${c.rows} rows (llama_decode returned ${rc}${rc === 1 ? ': no room in the KV cache' : ''}; see the log)`);
    }
    for (let k = 0; k < rowsOut.length; k++) {
      const ptr = f.llama_get_logits_ith(this.ctx, rowsOut[k] - c.start);
      if (!ptr) throw new DiffusionVLError('model', `llama.cpp returned no logits for row ${rowsOut[k]}`);
      logits.set(koffi.decode(ptr, koffi.array('float', this.vocabSize, 'Typed')) as Float32Array, (outAt + k) * this.vocabSize);
    }
    // A chunk of a larger block-causal pass becomes cache for the next chunk.
    if (c.extraSeqs > 0) f.llama_memory_seq_keep(this.mem, 0);
    this.libraryMs += performance.now() - t0;
    return outAt + rowsOut.length;
  }

  async head(hidden: HiddenRows, wantLogits: boolean): Promise<HeadOutput> {
    const { logits, rows } = hidden as LlamaHidden;
    const v = this.vocabSize;
    const ids = new Int32Array(rows);
    const probs = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      const [id, prob] = argmaxSoftmax(logits.subarray(r * v, (r + 1) * v));
      ids[r] = id;
      probs[r] = prob;
    }
    return { ids, probs, logits: wantLogits ? logits : undefined };
  }

  embedRow(id: number, dst: Float32Array, offset: number): void {
    this.embeddings.copyRow(id, dst, offset);
  }

  /** Positions the context's sequence 0 holds (for the cache and tests). */
  cachedPositions(): number {
    return Number(this.lib.fn.llama_memory_seq_pos_max(this.mem, 0)) + 1;
  }

  truncateCells(length: number): void {
    if (this.released) return;
    this.lib.fn.llama_memory_seq_rm(this.mem, -1, length, -1);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const f = this.lib.fn;
    f.llama_batch_free(this.batch);
    f.llama_free(this.ctx);
    f.llama_model_free(this.modelPtr);
    this.lib.detachLog();
  }

  private refused(why: string): DiffusionVLError {
    return new DiffusionVLError('model', `llama.cpp backend: refused a decoder pass before it reached the library: ${why}`);
  }
}

function contextLimits(lib: LlamaLibrary, ctx: unknown): PassLimits {
  const f = lib.fn;
  return { maxRows: Number(f.llama_n_ubatch(ctx)), maxSeqs: Number(f.llama_n_seq_max(ctx)), cells: Number(f.llama_n_ctx(ctx)) };
}

/** The engine's KV cache on llama.cpp: the context's sequence 0. */
export class LlamaKvCache implements KvCache {
  private len = 0;
  constructor(private model: LlamaModel) {}
  get length(): number {
    return this.len;
  }
  truncate(length: number): void {
    if (length >= this.len) return;
    this.len = Math.max(0, length);
    this.model.truncateCells(this.len);
  }
  /** The cells were cleared by a pass without a cache. */
  forget(): void {
    this.len = 0;
  }
  setLength(length: number): void {
    this.len = length;
  }
  dispose(): void {
    this.model.truncateCells(0);
    this.len = 0;
  }
}

/**
 * Arg-max (first index on ties) and its float32 softmax probability, as the ONNX head computes them
 * (ReduceMax(Softmax(logits))): exp(l − max) summed, the arg-max's share. The sum is taken in double precision, so
 * the probability agrees with ONNX Runtime's float32 softmax to its rounding.
 */
export function argmaxSoftmax(row: Float32Array): [number, number] {
  let best = 0;
  let max = row[0];
  for (let i = 1; i < row.length; i++) {
    if (row[i] > max) {
      max = row[i];
      best = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(Math.fround(row[i] - max));
  return [best, Math.fround(1 / sum)];
}

/** Runs a koffi function on its worker thread (the library may log from other threads while it runs). */
function callAsync(fn: { async: (...args: unknown[]) => void }, ...args: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => fn.async(...args, (err: unknown, res: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res))));
}
