import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus } from 'node:os';
import type { GgufType } from '../../engine/manifest';
import { loadLlamaLibrary, type LlamaLogSink } from '../../engine/backends/llamacpp/library';
import { LLAMA_FTYPE } from '../../engine/backends/llamacpp/ggmlTypes';

/**
 * Quantises a GGUF file with llama.cpp's own quantiser (`llama_model_quantize`, the code behind its
 * `llama-quantize` tool) from the library the runtime loads: Q8_0, Q4_0 and Q4_K_M come out exactly as llama.cpp
 * writes them, including its choice of a wider type for the tensors a mix keeps wider.
 */
const QUANTIZE_BUFFER_BYTES = 512 * 1024 * 1024;

export async function quantizeGguf(input: string, output: string, type: GgufType, log?: LlamaLogSink): Promise<void> {
  if (type === 'fp32' || type === 'fp16') throw new Error(`${type} is written directly, not quantised`);
  // Quantiser lines are progress chatter; warnings and errors go to whoever asked.
  let lib;
  try {
    lib = loadLlamaLibrary({ log: (level, text) => (level === 'warn' || level === 'error' ? log?.(level, text) : undefined) });
  } catch (err) {
    throw new Error(`GGUF ${type} is made by llama.cpp's own quantiser, which is not available here (${err instanceof Error ? err.message : String(err)}); fp32 and fp16 GGUF files need no library`);
  }
  const params = lib.fn.llama_model_quantize_default_params() as Record<string, unknown>;
  params.ftype = LLAMA_FTYPE[type];
  params.nthread = Math.max(1, Math.min(cpus().length, 8));
  // Rows are quantised in slabs of at most this many bytes (the library's default is 8 GiB), so a full-size model
  // quantises in the few GB the rest of the conversion needs.
  params.max_buf_size = QUANTIZE_BUFFER_BYTES;
  // Asynchronous (koffi's worker thread): the quantiser runs for minutes on a full-size model and logs from its
  // threads, which must not wait on a blocked event loop.
  const rc = await new Promise<number>((resolve, reject) => {
    lib.fn.llama_model_quantize.async(input, output, params, (err: unknown, res: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(Number(res))));
  });
  if (rc !== 0 || !existsSync(output)) {
    await rm(output, { force: true });
    throw new Error(`llama.cpp's quantiser failed on ${input} (→ ${type}, code ${rc})`);
  }
}
