import { join } from 'node:path';
import { checkGgufDecoder } from './llamacpp/ggufCheck';
import { DEFAULT_BACKEND, DEFAULT_PROVIDER, DiffusionVLError, type EngineOptions } from '../api';
import type { DiffusionModel } from '../diffusionModel';
import type { EmbeddingTable } from '../embeddings';
import type { KvCache } from '../kvCache';
import { manifestDecoders, type ModelManifest } from '../manifest';
import { LlamaModel } from './llamacpp/model';

/** A decoder backend as the engine holds it: the loop's seam plus its cache and lifetime. */
export interface DecoderRuntime extends DiffusionModel {
  createCache(initialCapacity: number): KvCache;
  /**
   * Room for a run that needs `cells` cache positions (its padded length plus the rows of its widest pass). A backend
   * that sizes its cache up front may replace it, emptying it (the cache's length says so); it returns whether it did.
   */
  reserve?(cells: number): Promise<boolean>;
  release(): Promise<void>;
}

/** KV cells of a llama.cpp context before any run asks for more (LlamaModel.reserve grows it). */
const LLAMA_CONTEXT_LENGTH = 1024;

/**
 * Loads the llama.cpp decoder when the options and the folder call for it (see DECODER_BACKENDS): null with the
 * reason when ONNX Runtime is to run the decoder — asked for, no GGUF decoder in the folder, or llama.cpp failing to
 * load for any reason (no library for this platform, another library build, a model it refuses). Called before ONNX
 * Runtime opens its sessions, so that with llama.cpp it opens only the vision tower.
 */
export async function loadLlamaDecoder(opts: EngineOptions, m: ModelManifest, emb: EmbeddingTable): Promise<{ llama: LlamaModel | null; reason: string }> {
  const requested = opts.backend ?? DEFAULT_BACKEND;
  if (requested === 'onnx') return { llama: null, reason: 'onnx requested' };
  const gguf = manifestDecoders(m).gguf;
  const asked = requested === 'auto' ? 'auto' : 'llama.cpp requested';
  if (!gguf) return { llama: null, reason: `${asked}: this model folder has no GGUF decoder (convert it with --decoder gguf or both); ONNX Runtime` };
  // A damaged file is the model's fault, not the library's: refused here (ModelUnavailable), never handed to llama.cpp,
  // which aborts the process on some malformed headers instead of failing.
  const ggufPath = join(opts.modelDir, gguf.file);
  checkGgufDecoder(ggufPath, m.text);
  try {
    const llama = await LlamaModel.load(ggufPath, emb, {
      provider: opts.provider ?? DEFAULT_PROVIDER,
      threads: opts.threads,
      kvType: gguf.type === 'fp32' ? 'f32' : 'f16',
      contextLength: LLAMA_CONTEXT_LENGTH,
    });
    return { llama, reason: `${asked}: llama.cpp, ${llama.deviceReason}` };
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const onnx = manifestDecoders(m).onnx;
    if (!onnx) throw new DiffusionVLError('model', `llama.cpp cannot run this model folder's GGUF decoder (${msg}), and the folder has no ONNX decoder to fall back to (convert it with --decoder both)`);
    return { llama: null, reason: `llama.cpp unavailable: ${msg}; fell back to ONNX Runtime` };
  }
}
