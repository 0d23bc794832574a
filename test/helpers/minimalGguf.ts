import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readSafetensorsHeader, tensorReader } from '../../server/converter/safetensors';

/**
 * TEMPORARY, test-only: a minimal F32 GGUF (v3, arch qwen2, no tokenizer) of a checkpoint's text decoder and head,
 * so that the llama.cpp backend can be tested before the converter's GGUF writer is on this branch. It goes when
 * `convert --decoder gguf` can be used instead (one GGUF writer in the end).
 */
export async function writeMinimalGguf(checkpointDir: string, outPath: string): Promise<string> {
  if (existsSync(outPath)) return outPath;
  const cfg = JSON.parse(readFileSync(join(checkpointDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const t = (cfg.text_config ?? cfg) as Record<string, number>;
  const H = t.hidden_size;
  const L = t.num_hidden_layers;
  const header = await readSafetensorsHeader(join(checkpointDir, 'model.safetensors'));
  const infos = new Map(header.tensors.map((x) => [x.name, x]));
  const reader = tensorReader((name) => {
    const i = infos.get(name);
    if (!i) throw new Error(`no tensor ${name}`);
    return i;
  });
  const tensors: [string, string][] = [
    ['token_embd.weight', 'model.embed_tokens.weight'],
    ['output_norm.weight', 'model.norm.weight'],
    ['output.weight', infos.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight'],
  ];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(
      [`blk.${i}.attn_norm.weight`, `${p}input_layernorm.weight`],
      [`blk.${i}.attn_q.weight`, `${p}self_attn.q_proj.weight`],
      [`blk.${i}.attn_q.bias`, `${p}self_attn.q_proj.bias`],
      [`blk.${i}.attn_k.weight`, `${p}self_attn.k_proj.weight`],
      [`blk.${i}.attn_k.bias`, `${p}self_attn.k_proj.bias`],
      [`blk.${i}.attn_v.weight`, `${p}self_attn.v_proj.weight`],
      [`blk.${i}.attn_v.bias`, `${p}self_attn.v_proj.bias`],
      [`blk.${i}.attn_output.weight`, `${p}self_attn.o_proj.weight`],
      [`blk.${i}.ffn_norm.weight`, `${p}post_attention_layernorm.weight`],
      [`blk.${i}.ffn_gate.weight`, `${p}mlp.gate_proj.weight`],
      [`blk.${i}.ffn_up.weight`, `${p}mlp.up_proj.weight`],
      [`blk.${i}.ffn_down.weight`, `${p}mlp.down_proj.weight`],
    );
  }
  const kv: [string, 'u32' | 'f32' | 'str', number | string][] = [
    ['general.architecture', 'str', 'qwen2'],
    ['general.alignment', 'u32', 32],
    ['qwen2.block_count', 'u32', L],
    ['qwen2.context_length', 'u32', t.max_position_embeddings],
    ['qwen2.embedding_length', 'u32', H],
    ['qwen2.feed_forward_length', 'u32', t.intermediate_size],
    ['qwen2.attention.head_count', 'u32', t.num_attention_heads],
    ['qwen2.attention.head_count_kv', 'u32', t.num_key_value_heads],
    ['qwen2.rope.freq_base', 'f32', t.rope_theta],
    ['qwen2.attention.layer_norm_rms_epsilon', 'f32', t.rms_norm_eps],
    ['qwen2.vocab_size', 'u32', t.vocab_size],
    ['tokenizer.ggml.model', 'str', 'none'],
  ];
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { const b = Buffer.from(s, 'utf8'); u64(b.length); parts.push(b); };
  parts.push(Buffer.from('GGUF', 'ascii'));
  u32(3);
  u64(tensors.length);
  u64(kv.length);
  for (const [k, type, v] of kv) {
    str(k);
    if (type === 'str') { u32(8); str(v as string); }
    else if (type === 'u32') { u32(4); u32(v as number); }
    else { u32(6); const b = Buffer.alloc(4); b.writeFloatLE(v as number); parts.push(b); }
  }
  let offset = 0;
  const align = (n: number) => Math.ceil(n / 32) * 32;
  for (const [name, src] of tensors) {
    const shape = infos.get(src)!.shape;
    str(name);
    u32(shape.length);
    // GGUF lists dimensions innermost first.
    for (const d of [...shape].reverse()) u64(d);
    u32(0); // GGML_TYPE_F32
    u64(offset);
    offset = align(offset + shape.reduce((a, b) => a * b, 1) * 4);
  }
  let head = Buffer.concat(parts);
  head = Buffer.concat([head, Buffer.alloc(align(head.length) - head.length)]);
  await mkdir(dirname(outPath), { recursive: true });
  const tmp = `${outPath}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    let at = 0;
    await fh.write(head, 0, head.length, at);
    at += head.length;
    for (const [, src] of tensors) {
      const data = await reader.readF32(src);
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      await fh.write(bytes, 0, bytes.length, at);
      at += align(bytes.length);
    }
    // The last tensor's padding.
    await fh.truncate(at);
  } finally {
    await fh.close();
    await reader.close();
  }
  await rename(tmp, outPath);
  return outPath;
}
