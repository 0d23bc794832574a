import { join } from 'node:path';
import { DEFAULT_BACKEND, DEFAULT_PROVIDER, type EngineOptions } from '../api';
import type { DiffusionModel } from '../diffusionModel';
import type { EmbeddingTable } from '../embeddings';
import type { KvCache } from '../kvCache';
import type { ModelManifest } from '../manifest';
import { LlamaModel } from './llamacpp/model';
import type { OrtModel } from './onnx/ortModel';

/** A decoder backend as the engine holds it: the loop's seam plus its cache and lifetime. */
export interface DecoderRuntime extends DiffusionModel {
  createCache(initialCapacity: number): KvCache;
  release(): Promise<void>;
}

export interface DecoderChoice {
  decoder: DecoderRuntime;
  backend: 'onnx' | 'llama.cpp';
  reason: string;
}

/** KV cells of a llama.cpp context: the longest prompt (images included) plus its answer. */
const LLAMA_CONTEXT_LENGTH = 8192;

/**
 * The GGUF decoder a model folder declares: `decoders.gguf` of the manifest (written by `convert --decoder gguf`),
 * else a `.gguf` file named in `files`.
 */
export function ggufDecoder(m: ModelManifest): { file: string; type?: string } | null {
  const d = (m as { decoders?: { gguf?: { file?: unknown; type?: unknown } } }).decoders?.gguf;
  if (d && typeof d.file === 'string') return { file: d.file, type: typeof d.type === 'string' ? d.type : undefined };
  const named = Object.values(m.files as unknown as Record<string, unknown>).find((f): f is string => typeof f === 'string' && f.endsWith('.gguf'));
  return named ? { file: named } : null;
}

/**
 * Picks the decoder's runtime (see DECODER_BACKENDS). llama.cpp failing to load for any reason — no GGUF decoder,
 * no library for this platform, another library build, a model it refuses — leaves ONNX Runtime with the reason.
 */
export async function chooseDecoder(opts: EngineOptions, m: ModelManifest, ort: OrtModel, emb: EmbeddingTable): Promise<DecoderChoice> {
  const requested = opts.backend ?? DEFAULT_BACKEND;
  const onnx = (reason: string): DecoderChoice => ({ decoder: ort, backend: 'onnx', reason });
  if (requested === 'onnx') return onnx('onnx requested');
  const gguf = ggufDecoder(m);
  const asked = requested === 'auto' ? 'auto' : 'llama.cpp requested';
  if (!gguf) return onnx(`${asked}: this model folder has no GGUF decoder (convert it with --decoder gguf or both); ONNX Runtime`);
  try {
    const llama = await LlamaModel.load(join(opts.modelDir, gguf.file), emb, {
      provider: opts.provider ?? DEFAULT_PROVIDER,
      threads: opts.threads,
      kvType: gguf.type === 'fp32' ? 'f32' : 'f16',
      contextLength: LLAMA_CONTEXT_LENGTH,
    });
    return { decoder: llama, backend: 'llama.cpp', reason: `${asked}: llama.cpp, ${llama.deviceReason}` };
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    return onnx(`llama.cpp unavailable: ${msg}; fell back to ONNX Runtime`);
  }
}
