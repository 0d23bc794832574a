import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { requireHardwareAdapter } from './adapterProbe';
import { createKvAppendSession, DeviceKvCache } from './deviceKvCache';
import { blockCausal, checkPatternRows, type AttentionPattern } from '../../attention';
import type { DecodeRequest, DiffusionModel, HeadOutput, HiddenRows } from '../../diffusionModel';
import type { EmbeddingTable } from '../../embeddings';
import type { KvCache } from '../../kvCache';
import { HostKvCache, type KvArray } from './hostKvCache';
import { onnxDecoderFiles, type ModelManifest } from '../../manifest';
import type { ConcreteProvider } from '../../providers';
import { range, ropeInvFreq, ropeTables } from '../../rope';
import { additiveMask } from './masks';

/** The decoder's hidden rows in host memory (CPU and copy-in providers) or a device buffer (WebGPU). */
interface OrtHidden extends HiddenRows {
  tensor: ort.Tensor;
  /** Rows of `tensor` the head is asked for (ascending). */
  outputRows: readonly number[];
}

export interface LoadOptions {
  /** ONNX Runtime intra-op threads. */
  threads?: number;
  /** The provider was chosen automatically: refuse a software WebGPU adapter. */
  auto?: boolean;
  /** WebGPU: keep the KV cache and decoder outputs on the device (default true). */
  kvOnDevice?: boolean;
  /** Open the text decoder and head too (default true); false when another backend (llama.cpp) runs them. */
  textDecoder?: boolean;
  /** Session options on top of the engine's (benchmarks: ORT's profiler, thread settings). */
  extra?: ort.InferenceSession.SessionOptions;
}

/** Bytes moved between host and ONNX Runtime, counted per model (see GenerationStats.io). */
export interface IoCounters {
  /** Past K/V bytes fed from host memory: read in place by the CPU provider, copied to the device every run by CUDA, DirectML and Core ML. */
  pastKvHostBytes: number;
  /** Decoder runs that fed past K/V from host memory. */
  pastKvHostRuns: number;
}

/**
 * ONNX Runtime sessions of a converted model folder (decoder, head, vision), used from the worker thread only.
 * On WebGPU the KV cache and the decoder's outputs stay on the device (IO binding): only arg-max ids and their
 * probabilities (and logits when sampling) are read back.
 */
export class OrtModel implements DiffusionModel {
  readonly hiddenSize: number;
  /** Time spent inside session.run(), for the "outside ORT" share in stats. */
  ortMs = 0;
  readonly io: IoCounters = { pastKvHostBytes: 0, pastKvHostRuns: 0 };
  private kvType: 'float32' | 'float16';
  private kvRow: number;
  private emptyKv: KvArray;

  private constructor(
    private m: ModelManifest,
    /** Null when another backend runs the text decoder (the vision tower alone is opened). */
    private decoder: ort.InferenceSession | null,
    private lmHead: ort.InferenceSession | null,
    private visionSession: ort.InferenceSession,
    private embeddings: EmbeddingTable,
    /** WebGPU: the append graph of the device-resident KV cache (null: K/V live in host memory). */
    private kvAppend: ort.InferenceSession | null,
  ) {
    this.hiddenSize = m.text.hiddenSize;
    this.kvType = m.kvDtype;
    this.kvRow = m.text.numKvHeads * m.text.headDim;
    this.emptyKv = m.kvDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
  }

  /**
   * Opens the sessions on `provider`. `auto` refuses a software WebGPU adapter. A GPU provider runs one warm-up
   * pass, so that a device that cannot run this model (no shader-f16 for an fp16 model, …) fails here and the
   * engine falls back to the CPU, instead of failing the first question.
   */
  static async load(dir: string, m: ModelManifest, provider: ConcreteProvider, embeddings: EmbeddingTable, opts: LoadOptions = {}): Promise<OrtModel> {
    const { threads, auto = false, extra = {} } = opts;
    if (provider === 'cuda') checkCudaProviderInstalled();
    if (provider === 'webgpu' && auto) await requireHardwareAdapter();
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      // A GPU provider that cannot load is reported in EngineInfo; keep ORT's own error log off the console.
      ...(provider === 'cpu' ? {} : { logSeverityLevel: 4 as const }),
      ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
      ...extra,
    };
    const onDevice = provider === 'webgpu' && opts.kvOnDevice !== false;
    // One profile per graph: the prefix names the graph.
    const profile = (file: string) => (extra.profileFilePrefix ? { profileFilePrefix: `${extra.profileFilePrefix}-${file.replace(/\.onnx$/, '')}` } : {});
    const sessions: ort.InferenceSession[] = [];
    const create = async (file: string, more: ort.InferenceSession.SessionOptions = {}) => {
      const s = await ort.InferenceSession.create(join(dir, file), { ...options, ...profile(file), ...more });
      sessions.push(s);
      return s;
    };
    const text = opts.textDecoder === false ? null : onnxDecoderFiles(m);
    try {
      // On the device, the decoder's outputs (hidden rows for the head, new K/V for the cache) stay there.
      const decoder = text && (await create(text.decoder, onDevice ? { preferredOutputLocation: 'gpu-buffer' } : {}));
      const lmHead = text && (await create(text.lmHead));
      const vision = await create(m.files.vision);
      const kvAppend = text && onDevice ? await createKvAppendSession(m.text.numLayers, m.text.numKvHeads * m.text.headDim, m.kvDtype) : null;
      if (kvAppend) sessions.push(kvAppend);
      const model = new OrtModel(m, decoder, lmHead, vision, embeddings, kvAppend);
      if (provider !== 'cpu' && text) await model.warmUp();
      return model;
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
      throw err;
    }
  }

  /** A cache of the kind this model's decoder reads: device buffers on WebGPU, host arrays otherwise. */
  createCache(initialCapacity: number): KvCache {
    const row = this.kvRow;
    const layers = this.m.text.numLayers;
    return this.kvAppend ? new DeviceKvCache(layers, row, this.kvType, this.kvAppend) : new HostKvCache(layers, row, this.kvType, initialCapacity);
  }

  async decode(embeds: Float32Array, positions: number[], pattern: AttentionPattern, cache: KvCache | null, req: DecodeRequest): Promise<HiddenRows | null> {
    const s = positions.length;
    checkPatternRows(pattern, s);
    const { cos, sin } = this.rope(positions);
    const past = cache ? cache.length : 0;
    const mask = additiveMask(pattern, positions, past);
    const wantHidden = req.outputRows.length > 0;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [1, s, this.hiddenSize]),
      cos: new ort.Tensor('float32', cos, [s, this.m.text.headDim]),
      sin: new ort.Tensor('float32', sin, [s, this.m.text.headDim]),
      attention_mask: new ort.Tensor('float32', mask, [s, past + s]),
    };
    for (let i = 0; i < this.m.text.numLayers; i++) {
      const [k, v] = this.pastFeeds(cache, i);
      feeds[`past_key.${i}`] = k;
      feeds[`past_value.${i}`] = v;
    }
    this.countHostKv(feeds);
    const layers = range(0, this.m.text.numLayers);
    const kvNames = layers.flatMap((i) => [`new_key.${i}`, `new_value.${i}`]);
    // Host outputs are copied into JS memory on every run, so fetch only what will be used. Device outputs cost no
    // copy, and onnxruntime-node 1.30 needs them all fetched: a gpu-buffer output fetched in one run and left out of
    // the next is handed back to ORT as a stale pre-allocated value ("output OrtValue … has shape …").
    const onDevice = this.kvAppend !== null;
    const fetches = onDevice ? ['hidden', ...kvNames] : [...(wantHidden ? ['hidden'] : []), ...(req.commitRows > 0 ? kvNames : [])];
    const out = await this.run(this.textSession(this.decoder), feeds, fetches);
    try {
      if (req.commitRows > 0) {
        if (!cache) throw new Error('decode: commitRows needs a cache');
        const keys = layers.map((i) => out[`new_key.${i}`]);
        const values = layers.map((i) => out[`new_value.${i}`]);
        if (cache instanceof DeviceKvCache) await this.timed(() => cache.append(keys, values, req.commitRows));
        else if (cache instanceof HostKvCache) cache.append(keys.map((t) => t.data as KvArray), values.map((t) => t.data as KvArray), req.commitRows);
        else throw new Error('decode: unknown cache kind');
      }
    } finally {
      if (onDevice) for (const name of kvNames) out[name].dispose();
    }
    if (!wantHidden) {
      if (onDevice) out.hidden.dispose();
      return null;
    }
    const hidden: OrtHidden = { rows: req.outputRows.length, tensor: out.hidden, outputRows: req.outputRows };
    return hidden;
  }

  async head(hidden: HiddenRows, wantLogits: boolean): Promise<HeadOutput> {
    const h = hidden as OrtHidden;
    // Host rows: the head runs on the wanted rows only (a view when they are contiguous). Device rows: ONNX Runtime
    // cannot gather from a GPU buffer, so the head runs on all of them and the wanted ones are picked from its output
    // (on a GPU the head is bound by reading its weights, so extra rows are nearly free).
    const onDevice = h.tensor.location === 'gpu-buffer';
    const input = onDevice ? h.tensor : new ort.Tensor('float32', gatherRowsOf(h.tensor.data as Float32Array, h.outputRows, this.hiddenSize), [1, h.rows, this.hiddenSize]);
    const picked = onDevice ? h.outputRows : range(0, h.rows);
    const fetches = wantLogits ? ['token_ids', 'token_probs', 'logits'] : ['token_ids', 'token_probs'];
    try {
      const out = await this.run(this.textSession(this.lmHead), { hidden: input }, fetches);
      const ids64 = out.token_ids.data as BigInt64Array;
      const allProbs = out.token_probs.data as Float32Array;
      const ids = new Int32Array(h.rows);
      const probs = new Float32Array(h.rows);
      picked.forEach((r, k) => {
        ids[k] = Number(ids64[r]);
        probs[k] = allProbs[r];
      });
      const v = this.m.text.vocabSize;
      const logits = wantLogits ? gatherRowsOf(out.logits.data as Float32Array, picked, v) : undefined;
      return { ids, probs, logits };
    } finally {
      if (onDevice) h.tensor.dispose();
    }
  }

  /** One run of the architecture's vision graph (its adapter in engine/arch/ builds the feeds); returns `fetch`. */
  async runVision(feeds: Record<string, ort.Tensor>, fetch: string): Promise<Float32Array> {
    const out = await this.run(this.visionSession, feeds, [fetch]);
    return out[fetch].data as Float32Array;
  }

  /** The vision graph's input names (its adapter feeds what the converted graph declares). */
  get visionInputNames(): readonly string[] {
    return this.visionSession.inputNames;
  }

  /** Ends ORT profiling on every session (when enabled): each writes its JSON trace. */
  endProfiling(): void {
    for (const s of [this.decoder, this.lmHead, this.visionSession]) s?.endProfiling();
  }

  embedRow(id: number, dst: Float32Array, offset: number): void {
    this.embeddings.copyRow(id, dst, offset);
  }

  async release(): Promise<void> {
    await Promise.all([this.decoder, this.lmHead, this.visionSession, this.kvAppend].map((s) => s?.release()));
    this.embeddings.close();
  }

  private invFreq?: Float32Array;
  private rope(positions: number[]): { cos: Float32Array; sin: Float32Array } {
    this.invFreq ??= ropeInvFreq(this.m.text.headDim, this.m.text.ropeTheta);
    return ropeTables(positions, this.invFreq);
  }

  /** One decoder pass of one row and the head: compiles the GPU's shaders and proves the device can run the model. */
  private async warmUp(): Promise<void> {
    const h = this.hiddenSize;
    const embeds = new Float32Array(h);
    this.embedRow(0, embeds, 0);
    const hidden = await this.decode(embeds, [0], blockCausal(1), null, { commitRows: 0, outputRows: [0] });
    await this.head(hidden!, false);
    this.ortMs = 0;
  }

  private textSession(s: ort.InferenceSession | null): ort.InferenceSession {
    if (!s) throw new Error('this ONNX Runtime model was opened for the vision tower only');
    return s;
  }

  private pastFeeds(cache: KvCache | null, i: number): [ort.Tensor, ort.Tensor] {
    if (cache instanceof DeviceKvCache) return [cache.pastKey(i), cache.pastValue(i)];
    const dims = [1, cache ? cache.length : 0, this.kvRow];
    if (cache instanceof HostKvCache) return [new ort.Tensor(this.kvType, cache.pastKey(i), dims), new ort.Tensor(this.kvType, cache.pastValue(i), dims)];
    return [new ort.Tensor(this.kvType, this.emptyKv, dims), new ort.Tensor(this.kvType, this.emptyKv, dims)];
  }

  private countHostKv(feeds: Record<string, ort.Tensor>): void {
    let bytes = 0;
    for (const [name, t] of Object.entries(feeds)) {
      if (name.startsWith('past_') && t.location === 'cpu') bytes += (t.data as KvArray).byteLength;
    }
    if (bytes > 0) {
      this.io.pastKvHostBytes += bytes;
      this.io.pastKvHostRuns++;
    }
  }

  private run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<ort.InferenceSession.OnnxValueMapType> {
    return this.timed(() => session.run(feeds, fetches));
  }

  private async timed<T>(f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.ortMs += performance.now() - t0;
    }
  }
}


/** Rows `rows` of a row-major [*, width] array: a view when they are contiguous, else a copy. */
function gatherRowsOf(data: Float32Array, rows: readonly number[], width: number): Float32Array {
  const n = rows.length;
  if (n > 0 && rows[n - 1] - rows[0] === n - 1) return data.subarray(rows[0] * width, (rows[0] + n) * width);
  const out = new Float32Array(n * width);
  rows.forEach((r, k) => out.set(data.subarray(r * width, (r + 1) * width), k * width));
  return out;
}

/**
 * onnxruntime-node ships its CUDA provider as a separate download (`npm run gpu:cuda`). Checking for the library
 * first gives a clearer reason than ORT's load error (which it also prints to the console).
 */
function checkCudaProviderInstalled(): void {
  const bin = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin');
  const found = (dir: string): boolean =>
    existsSync(dir) && readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? found(join(dir, e.name)) : e.name.startsWith('libonnxruntime_providers_cuda')));
  if (!found(bin)) throw new Error('onnxruntime-node has no CUDA provider library installed (run `npm run gpu:cuda`; needs CUDA 12 and cuDNN 9)');
}
