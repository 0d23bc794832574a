import { koffi } from './koffi';

/**
 * The structs that llama.cpp passes by value, written field by field from `include/llama.h` of the pinned build
 * (pinned.ts). Their fields move between llama.cpp versions without the size always changing, so `checkLayouts`
 * reads the library's own defaults through these definitions and compares known values at known offsets before
 * anything else is called.
 */

export const ModelParams = koffi.struct('llama_model_params', {
  devices: 'void *', // NULL-terminated ggml_backend_dev_t list; NULL = all devices
  tensor_buft_overrides: 'void *',
  n_gpu_layers: 'int32_t',
  split_mode: 'int32_t',
  load_mode: 'int32_t',
  lazy_mode: 'int32_t',
  main_gpu: 'int32_t',
  tensor_split: 'void *',
  progress_callback: 'void *',
  progress_callback_user_data: 'void *',
  kv_overrides: 'void *',
  vocab_only: 'bool',
  check_tensors: 'bool',
  use_extra_bufts: 'bool',
  no_host: 'bool',
  no_alloc: 'bool',
  load_mtp: 'bool',
});

export const ContextParams = koffi.struct('llama_context_params', {
  n_ctx: 'uint32_t',
  n_batch: 'uint32_t',
  n_ubatch: 'uint32_t',
  n_seq_max: 'uint32_t',
  n_rs_seq: 'uint32_t',
  n_outputs_max: 'uint32_t',
  n_outputs_max_per_seq: 'uint32_t',
  n_threads: 'int32_t',
  n_threads_batch: 'int32_t',
  ctx_type: 'int32_t',
  rope_scaling_type: 'int32_t',
  pooling_type: 'int32_t',
  attention_type: 'int32_t',
  flash_attn_type: 'int32_t',
  rope_freq_base: 'float',
  rope_freq_scale: 'float',
  yarn_ext_factor: 'float',
  yarn_attn_factor: 'float',
  yarn_beta_fast: 'float',
  yarn_beta_slow: 'float',
  yarn_orig_ctx: 'uint32_t',
  defrag_thold: 'float',
  cb_eval: 'void *',
  cb_eval_user_data: 'void *',
  type_k: 'int32_t',
  type_v: 'int32_t',
  abort_callback: 'void *',
  abort_callback_data: 'void *',
  embeddings: 'bool',
  offload_kqv: 'bool',
  no_perf: 'bool',
  op_offload: 'bool',
  swa_full: 'bool',
  kv_unified: 'bool',
  samplers: 'void *',
  n_samplers: 'size_t',
  ctx_other: 'void *',
});

export const QuantizeParams = koffi.struct('llama_model_quantize_params', {
  nthread: 'int32_t',
  ftype: 'int32_t',
  output_tensor_type: 'int32_t',
  token_embedding_type: 'int32_t',
  allow_requantize: 'bool',
  quantize_output_tensor: 'bool',
  only_copy: 'bool',
  pure: 'bool',
  keep_split: 'bool',
  dry_run: 'bool',
  imatrix: 'void *',
  kv_overrides: 'void *',
  tt_overrides: 'void *',
  prune_layers: 'void *',
  max_buf_size: 'size_t',
});

export const Batch = koffi.struct('llama_batch', {
  n_tokens: 'int32_t',
  token: 'int32_t *',
  embd: 'float *',
  pos: 'int32_t *',
  n_seq_id: 'int32_t *',
  seq_id: 'int32_t **',
  logits: 'int8_t *',
});

/**
 * Sizes and offsets of the pinned header on 64-bit platforms (the only ones with library packages), as a C compiler
 * lays them out. A unit test checks koffi's layout of the definitions above against this table.
 */
export const EXPECTED_LAYOUT = {
  llama_model_params: { size: 80, offsets: { n_gpu_layers: 16, lazy_mode: 28, tensor_split: 40, kv_overrides: 64, vocab_only: 72, load_mtp: 77 } },
  llama_context_params: {
    size: 160,
    offsets: { n_outputs_max_per_seq: 24, n_threads: 28, flash_attn_type: 52, defrag_thold: 84, cb_eval: 88, type_k: 104, abort_callback: 112, embeddings: 128, kv_unified: 133, samplers: 136, ctx_other: 152 },
  },
  llama_model_quantize_params: { size: 64, offsets: { ftype: 4, allow_requantize: 16, dry_run: 21, imatrix: 24, max_buf_size: 56 } },
  llama_batch: { size: 56, offsets: { token: 8, embd: 16, pos: 24, n_seq_id: 32, seq_id: 40, logits: 48 } },
} as const;

/** ggml/llama enum values used here (same header). */
export const GGML_TYPE_F16 = 1;
export const GGML_TYPE_COUNT = 43;
export const LLAMA_FTYPE_MOSTLY_Q8_0 = 7;
export const LLAMA_FLASH_ATTN_TYPE_AUTO = -1;
export const LLAMA_SPLIT_MODE_NONE = 0;
export const LLAMA_SPLIT_MODE_LAYER = 1;
/** `llama_load_mode`: read the weights into the backend's buffers, no memory map. */
export const LLAMA_LOAD_MODE_NONE = 0;
export const GGML_BACKEND_DEVICE_TYPE = { cpu: 0, gpu: 1, igpu: 2, accel: 3, meta: 4 } as const;
export const GGML_LOG_LEVEL = { none: 0, debug: 1, info: 2, warn: 3, error: 4, cont: 5 } as const;

type Fields = Record<string, number | boolean | bigint | null | unknown>;

/**
 * The library's defaults (llama_*_default_params of the pinned build) that sit at offsets a moved field would
 * change; a mismatch means the loaded library does not have this layout. Returns the problems found.
 */
export function checkLayouts(model: Fields, context: Fields, quantize: Fields): string[] {
  const expect: [string, Fields, Record<string, unknown>][] = [
    ['llama_model_params', model, { n_gpu_layers: -1, split_mode: LLAMA_SPLIT_MODE_LAYER, load_mode: -1, lazy_mode: 1, main_gpu: 0, vocab_only: false, use_extra_bufts: true, no_alloc: false, load_mtp: false }],
    ['llama_context_params', context, {
      n_ctx: 512, n_batch: 2048, n_ubatch: 512, n_seq_max: 1, n_rs_seq: 0, n_outputs_max: 0, n_outputs_max_per_seq: 1, n_threads: 4, n_threads_batch: 4,
      ctx_type: 0, rope_scaling_type: -1, pooling_type: -1, attention_type: -1, flash_attn_type: LLAMA_FLASH_ATTN_TYPE_AUTO,
      rope_freq_base: 0, yarn_ext_factor: -1, yarn_beta_slow: -1, yarn_orig_ctx: 0, defrag_thold: -1, type_k: GGML_TYPE_F16, type_v: GGML_TYPE_F16,
      embeddings: false, offload_kqv: true, no_perf: true, op_offload: true, swa_full: true, kv_unified: false, n_samplers: 0,
    }],
    ['llama_model_quantize_params', quantize, {
      nthread: 0, ftype: LLAMA_FTYPE_MOSTLY_Q8_0, output_tensor_type: GGML_TYPE_COUNT, token_embedding_type: GGML_TYPE_COUNT,
      allow_requantize: false, quantize_output_tensor: true, only_copy: false, dry_run: false, max_buf_size: 8 * 1024 ** 3,
    }],
  ];
  const problems: string[] = [];
  for (const [name, got, want] of expect) {
    for (const [field, value] of Object.entries(want)) {
      const g = typeof got[field] === 'bigint' ? Number(got[field]) : got[field];
      if (g !== value) problems.push(`${name}.${field} = ${String(g)}, expected ${String(value)}`);
    }
  }
  return problems;
}
