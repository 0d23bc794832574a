import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { DecoderOutput, DiffusionModel, HeadOutput } from './diffusionModel';
import type { EmbeddingTable } from './embeddings';
import type { KvArray, KvCache } from './kvCache';
import type { ModelManifest } from './manifest';
import type { ConcreteProvider } from './providers';
import { ropeInvFreq, ropeTables } from './rope';

/** ONNX Runtime sessions of a converted model folder (decoder, head, vision), used from the worker thread only. */
export class OrtModel implements DiffusionModel {
  readonly hiddenSize: number;
  /** Time spent inside session.run(), for the "outside ORT" share in stats. */
  ortMs = 0;
  private kvType: 'float32' | 'float16';
  private kvRow: number;
  private emptyKv: KvArray;

  private constructor(
    private m: ModelManifest,
    private decoder: ort.InferenceSession,
    private lmHead: ort.InferenceSession,
    private visionSession: ort.InferenceSession,
    private embeddings: EmbeddingTable,
  ) {
    this.hiddenSize = m.text.hiddenSize;
    this.kvType = m.kvDtype;
    this.kvRow = m.text.numKvHeads * m.text.headDim;
    this.emptyKv = m.kvDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
  }

  /** `extra`: session options on top of the engine's (benchmarks: ORT's profiler, thread settings). */
  static async load(
    dir: string,
    m: ModelManifest,
    provider: ConcreteProvider,
    embeddings: EmbeddingTable,
    threads?: number,
    extra: ort.InferenceSession.SessionOptions = {},
  ): Promise<OrtModel> {
    if (provider === 'cuda') checkCudaProviderInstalled();
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      // A GPU provider that cannot load is reported in EngineInfo; keep ORT's own error log off the console.
      ...(provider === 'cpu' ? {} : { logSeverityLevel: 4 as const }),
      ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
      ...extra,
    };
    // One profile per graph: the prefix names the graph.
    const profile = (file: string) => (extra.profileFilePrefix ? { profileFilePrefix: `${extra.profileFilePrefix}-${file.replace(/\.onnx$/, '')}` } : {});
    const create = (file: string) => ort.InferenceSession.create(join(dir, file), { ...options, ...profile(file) });
    const decoder = await create(m.files.decoder);
    const lmHead = await create(m.files.lmHead);
    const vision = await create(m.files.vision);
    return new OrtModel(m, decoder, lmHead, vision, embeddings);
  }

  async decode(embeds: Float32Array, positions: number[], mask: Float32Array, cache: KvCache | null, wantKv: boolean): Promise<DecoderOutput> {
    const { cos, sin } = this.rope(positions);
    const s = positions.length;
    const past = cache ? cache.length : 0;
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [1, s, this.hiddenSize]),
      cos: new ort.Tensor('float32', cos, [s, this.m.text.headDim]),
      sin: new ort.Tensor('float32', sin, [s, this.m.text.headDim]),
      attention_mask: new ort.Tensor('float32', mask, [s, past + s]),
    };
    for (let i = 0; i < this.m.text.numLayers; i++) {
      feeds[`past_key.${i}`] = new ort.Tensor(this.kvType, cache ? cache.pastKey(i) : this.emptyKv, [1, past, this.kvRow]);
      feeds[`past_value.${i}`] = new ort.Tensor(this.kvType, cache ? cache.pastValue(i) : this.emptyKv, [1, past, this.kvRow]);
    }
    // Outputs are copied into JS memory on every run, so fetch the K/V only when they will be stored.
    const fetches = ['hidden'];
    if (wantKv) for (let i = 0; i < this.m.text.numLayers; i++) fetches.push(`new_key.${i}`, `new_value.${i}`);
    const out = await this.run(this.decoder, feeds, fetches);
    const result: DecoderOutput = { hidden: out.hidden.data as Float32Array };
    if (wantKv) {
      result.newKeys = [];
      result.newValues = [];
      for (let i = 0; i < this.m.text.numLayers; i++) {
        result.newKeys.push(out[`new_key.${i}`].data as KvArray);
        result.newValues.push(out[`new_value.${i}`].data as KvArray);
      }
    }
    return result;
  }

  async head(hidden: Float32Array, wantLogits: boolean): Promise<HeadOutput> {
    const rows = hidden.length / this.hiddenSize;
    const feeds = { hidden: new ort.Tensor('float32', hidden, [1, rows, this.hiddenSize]) };
    const fetches = wantLogits ? ['token_ids', 'token_probs', 'logits'] : ['token_ids', 'token_probs'];
    const out = await this.run(this.lmHead, feeds, fetches);
    const ids64 = out.token_ids.data as BigInt64Array;
    const ids = new Int32Array(rows);
    for (let r = 0; r < rows; r++) ids[r] = Number(ids64[r]);
    return { ids, probs: out.token_probs.data as Float32Array, logits: wantLogits ? (out.logits.data as Float32Array) : undefined };
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
    for (const s of [this.decoder, this.lmHead, this.visionSession]) s.endProfiling();
  }

  embedRow(id: number, dst: Float32Array, offset: number): void {
    this.embeddings.copyRow(id, dst, offset);
  }

  async release(): Promise<void> {
    await Promise.all([this.decoder.release(), this.lmHead.release(), this.visionSession.release()]);
    this.embeddings.close();
  }

  private invFreq?: Float32Array;
  private rope(positions: number[]): { cos: Float32Array; sin: Float32Array } {
    this.invFreq ??= ropeInvFreq(this.m.text.headDim, this.m.text.ropeTheta);
    return ropeTables(positions, this.invFreq);
  }

  private async run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<ort.InferenceSession.OnnxValueMapType> {
    const t0 = performance.now();
    try {
      return await session.run(feeds, fetches);
    } finally {
      this.ortMs += performance.now() - t0;
    }
  }
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
