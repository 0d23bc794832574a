/**
 * The Qwen2 text decoder and LM head as a llama.cpp model file (GGUF v3, arch `qwen2`): the metadata llama.cpp's
 * qwen2 loader reads, its tensor names, and the tokenizer. Tensors are read from the checkpoint and written one at a
 * time, so memory stays at about one tensor (the embedding table is the largest).
 */
import { rm } from 'node:fs/promises';
import type { QwenVLTextConfig } from '../checkpointConfig';
import { GGUF_ALIGNMENT, LLAMA_FTYPE } from '../../engine/backends/llamacpp/ggmlTypes';
import { GgufWriter } from './ggufWriter';
import type { GgufVocab } from './vocab';

export interface Qwen2GgufSource {
  readF32(name: string, expectShape?: number[]): Promise<Float32Array>;
}

export interface Qwen2GgufOptions {
  /** Tensor type of the matrices (norms and biases stay F32, as in llama.cpp's own conversion). */
  type: 'fp32' | 'fp16';
  name: string;
  text: QwenVLTextConfig;
  tokens: { bos?: number; eos: number; pad: number };
  /** The tokenizer; without one the file declares no vocabulary (`tokenizer.ggml.model = none`) and its size. */
  vocab?: GgufVocab;
  onTensor?: (name: string) => void;
}

/** One tensor of the file: its llama.cpp name, the checkpoint tensor it comes from, and the PyTorch shape. */
interface Mapped {
  gguf: string;
  source: string;
  shape: number[];
}

/** llama.cpp's qwen2 tensors in load order, each mapped from the Hugging Face Qwen2 name. */
export function qwen2TensorMap(t: QwenVLTextConfig): Mapped[] {
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: D, intermediateSize: F, vocabSize: V } = t;
  const out: Mapped[] = [
    { gguf: 'token_embd.weight', source: 'model.embed_tokens.weight', shape: [V, H] },
    { gguf: 'output_norm.weight', source: 'model.norm.weight', shape: [H] },
  ];
  // A tied head is not stored: llama.cpp uses token_embd for `output` when the file has none.
  if (!t.tieWordEmbeddings) out.push({ gguf: 'output.weight', source: 'lm_head.weight', shape: [V, H] });
  for (let i = 0; i < t.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const b = `blk.${i}.`;
    out.push(
      { gguf: `${b}attn_norm.weight`, source: `${p}input_layernorm.weight`, shape: [H] },
      { gguf: `${b}attn_q.weight`, source: `${p}self_attn.q_proj.weight`, shape: [nH * D, H] },
      { gguf: `${b}attn_q.bias`, source: `${p}self_attn.q_proj.bias`, shape: [nH * D] },
      { gguf: `${b}attn_k.weight`, source: `${p}self_attn.k_proj.weight`, shape: [nKV * D, H] },
      { gguf: `${b}attn_k.bias`, source: `${p}self_attn.k_proj.bias`, shape: [nKV * D] },
      { gguf: `${b}attn_v.weight`, source: `${p}self_attn.v_proj.weight`, shape: [nKV * D, H] },
      { gguf: `${b}attn_v.bias`, source: `${p}self_attn.v_proj.bias`, shape: [nKV * D] },
      { gguf: `${b}attn_output.weight`, source: `${p}self_attn.o_proj.weight`, shape: [H, nH * D] },
      { gguf: `${b}ffn_norm.weight`, source: `${p}post_attention_layernorm.weight`, shape: [H] },
      { gguf: `${b}ffn_gate.weight`, source: `${p}mlp.gate_proj.weight`, shape: [F, H] },
      { gguf: `${b}ffn_up.weight`, source: `${p}mlp.up_proj.weight`, shape: [F, H] },
      { gguf: `${b}ffn_down.weight`, source: `${p}mlp.down_proj.weight`, shape: [H, F] },
    );
  }
  return out;
}

/** Writes the file at `path` (removed again if anything fails). */
export async function writeQwen2Gguf(src: Qwen2GgufSource, path: string, o: Qwen2GgufOptions): Promise<void> {
  const t = o.text;
  // llama.cpp's qwen2 graph takes the attention output as n_embd × n_embd and the head size as n_embd / n_head.
  if (t.numHeads * t.headDim !== t.hiddenSize) throw new Error(`GGUF qwen2: heads × head size (${t.numHeads} × ${t.headDim}) must equal the hidden size ${t.hiddenSize}`);
  const w = new GgufWriter(path);
  const arch = 'qwen2';
  w.set('general.architecture', { type: 'string', value: arch });
  w.set('general.name', { type: 'string', value: o.name });
  w.set('general.file_type', { type: 'u32', value: LLAMA_FTYPE[o.type] });
  w.set('general.quantization_version', { type: 'u32', value: 2 });
  w.set('general.alignment', { type: 'u32', value: GGUF_ALIGNMENT });
  w.set(`${arch}.context_length`, { type: 'u32', value: t.maxPositionEmbeddings ?? 32768 });
  w.set(`${arch}.embedding_length`, { type: 'u32', value: t.hiddenSize });
  w.set(`${arch}.block_count`, { type: 'u32', value: t.numLayers });
  w.set(`${arch}.feed_forward_length`, { type: 'u32', value: t.intermediateSize });
  w.set(`${arch}.attention.head_count`, { type: 'u32', value: t.numHeads });
  w.set(`${arch}.attention.head_count_kv`, { type: 'u32', value: t.numKvHeads });
  w.set(`${arch}.rope.freq_base`, { type: 'f32', value: t.ropeTheta });
  w.set(`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: t.rmsNormEps });
  writeTokenizer(w, arch, t.vocabSize, o);

  const tensors = qwen2TensorMap(t);
  for (const m of tensors) w.addTensor(m.gguf, m.shape, o.type === 'fp16' && m.shape.length === 2 ? 'F16' : 'F32');
  try {
    w.writeHeader();
    for (const m of tensors) {
      o.onTensor?.(m.source);
      w.writeTensor(m.gguf, await src.readF32(m.source, m.shape));
    }
    w.finish();
  } catch (err) {
    w.close();
    await rm(path, { force: true });
    throw err;
  }
}

function writeTokenizer(w: GgufWriter, arch: string, vocabSize: number, o: Qwen2GgufOptions): void {
  if (!o.vocab) {
    // llama.cpp accepts a model without a vocabulary ("none") and sizes it from <arch>.vocab_size.
    w.set('tokenizer.ggml.model', { type: 'string', value: 'none' });
    w.set(`${arch}.vocab_size`, { type: 'u32', value: vocabSize });
    return;
  }
  w.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
  w.set('tokenizer.ggml.pre', { type: 'string', value: o.vocab.pre });
  w.set('tokenizer.ggml.tokens', { type: 'string[]', value: o.vocab.tokens });
  w.set('tokenizer.ggml.token_type', { type: 'i32[]', value: o.vocab.types });
  w.set('tokenizer.ggml.merges', { type: 'string[]', value: o.vocab.merges });
  w.set('tokenizer.ggml.bos_token_id', { type: 'u32', value: o.tokens.bos ?? o.tokens.pad });
  w.set('tokenizer.ggml.eos_token_id', { type: 'u32', value: o.tokens.eos });
  w.set('tokenizer.ggml.padding_token_id', { type: 'u32', value: o.tokens.pad });
  w.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: false });
}
