import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelManifest } from '../engine/manifest';
import { OnnxInitializers } from '../onnx/initializers';
import type { TensorReader } from './qwen2';

/**
 * The Qwen2 text model's checkpoint tensors (Hugging Face names and shapes) read back from an fp32 model folder:
 * the decoder and head graphs qwen2.ts writes and the embedding table. It undoes their fusions (q/k/v and
 * gate/up share one matmul) and transposes (MatMul takes Wᵀ), which move float32 values without changing them, so
 * every value is the checkpoint's own bit for bit.
 */
export class Qwen2Readback implements TensorReader {
  private readonly decoder: OnnxInitializers;
  private readonly head: OnnxInitializers;
  /** The last stored Wᵀ read (q, k and v come from one; so do gate and up). */
  private last?: { name: string; dims: number[]; data: Float32Array };

  constructor(
    private readonly dir: string,
    private readonly m: ModelManifest,
    files: { decoder: string; lmHead: string },
  ) {
    this.decoder = new OnnxInitializers(join(dir, files.decoder));
    this.head = new OnnxInitializers(join(dir, files.lmHead));
  }

  readF32(name: string, expectShape?: number[]): Promise<Float32Array> {
    const data = this.read(name);
    if (expectShape && data.length !== expectShape.reduce((a, b) => a * b, 1)) throw new Error(`${this.dir}: ${name} has ${data.length} values, expected [${expectShape.join(', ')}]`);
    return Promise.resolve(data);
  }

  private read(name: string): Float32Array {
    const t = this.m.text;
    const q = t.numHeads * t.headDim;
    const kv = t.numKvHeads * t.headDim;
    const F = t.intermediateSize;
    if (name === 'model.embed_tokens.weight') return this.embeddings();
    if (name === 'lm_head.weight') return this.rows(this.head, 'lm_head.T');
    if (name === 'model.norm.weight') return this.decoder.readF32(name).data;
    const layer = /^(model\.layers\.\d+\.)(.+)$/.exec(name);
    if (!layer) throw new Error(`${this.dir}: no tensor ${name} in a Qwen2 text model`);
    const [, p, rest] = layer;
    const bias = () => this.decoder.readF32(`${p}self_attn.qkv_proj.bias`).data;
    switch (rest) {
      case 'input_layernorm.weight':
      case 'post_attention_layernorm.weight':
        return this.decoder.readF32(name).data;
      case 'self_attn.q_proj.weight':
        return this.rows(this.decoder, `${p}self_attn.qkv_proj.T`, 0, q);
      case 'self_attn.k_proj.weight':
        return this.rows(this.decoder, `${p}self_attn.qkv_proj.T`, q, q + kv);
      case 'self_attn.v_proj.weight':
        return this.rows(this.decoder, `${p}self_attn.qkv_proj.T`, q + kv, q + 2 * kv);
      case 'self_attn.q_proj.bias':
        return bias().slice(0, q);
      case 'self_attn.k_proj.bias':
        return bias().slice(q, q + kv);
      case 'self_attn.v_proj.bias':
        return bias().slice(q + kv, q + 2 * kv);
      case 'self_attn.o_proj.weight':
        return this.rows(this.decoder, `${p}self_attn.o_proj.T`);
      case 'mlp.gate_proj.weight':
        return this.rows(this.decoder, `${p}mlp.gate_up_proj.T`, 0, F);
      case 'mlp.up_proj.weight':
        return this.rows(this.decoder, `${p}mlp.gate_up_proj.T`, F, 2 * F);
      case 'mlp.down_proj.weight':
        return this.rows(this.decoder, `${p}mlp.down_proj.T`);
      default:
        throw new Error(`${this.dir}: no tensor ${name} in a Qwen2 text model`);
    }
  }

  /** Rows [r0, r1) of W [n, k] from the stored Wᵀ [k, n] (all rows by default). */
  private rows(g: OnnxInitializers, name: string, r0 = 0, r1?: number): Float32Array {
    if (this.last?.name !== name) this.last = { name, ...g.readF32(name) };
    const { dims, data } = this.last;
    if (dims.length !== 2) throw new Error(`${g.path}: ${name} has dims [${dims.join(', ')}], expected a matrix`);
    const [k, n] = dims;
    const end = r1 ?? n;
    const out = new Float32Array((end - r0) * k);
    for (let r = r0; r < end; r++) for (let c = 0; c < k; c++) out[(r - r0) * k + c] = data[c * n + r];
    return out;
  }

  private embeddings(): Float32Array {
    const e = this.m.embeddings;
    if (e.dtype !== 'float32') throw new Error(`${this.dir}: ${e.file} is ${e.dtype}, not the float32 original`);
    const bytes = new Uint8Array(e.rows * e.cols * 4);
    const fd = openSync(join(this.dir, e.file), 'r');
    try {
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(fd, bytes, got, bytes.length - got, got);
        if (n === 0) throw new Error(`${this.dir}: ${e.file} is shorter than ${e.rows} × ${e.cols} float32 values`);
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    return new Float32Array(bytes.buffer);
  }
}
