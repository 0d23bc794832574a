import { join } from 'node:path';
import { EmbeddingTable } from '../engine/embeddings';
import { preprocessImage, preprocessOptionsFor } from '../engine/arch/qwenvl/preprocess';
import { asQwenVL, readManifest, type QwenVLManifest } from '../engine/manifest';
import { blockCausal } from '../engine/attention';
import { OrtModel } from '../engine/backends/onnx/ortModel';
import { chatPrompt, tokenizeWithImages } from '../engine/prompt';
import { range } from '../engine/rope';
import { TextTokenizer } from '../engine/tokenizer';
import { encodeQwenVL } from '../engine/arch/qwenvl';

/**
 * Greedy autoregressive decoding on a converted model's ONNX graphs: the baseline the block-diffusion model is
 * translated from. It uses the engine's own sessions, embeddings, preprocessing, prompt and tokenizer; only the
 * loop differs: a causal prefill (block-causal with block size 1) and then one token per forward, read from the
 * last position's head (next-token prediction), with the KV cache appended every step.
 */
export interface ArResult {
  text: string;
  ids: number[];
  forwards: number;
  totalMs: number;
}

export class ArDecoder {
  private constructor(
    private m: QwenVLManifest,
    private model: OrtModel,
    private tok: TextTokenizer,
  ) {}

  static async load(modelDir: string, threads?: number): Promise<ArDecoder> {
    const m = asQwenVL(readManifest(modelDir));
    const emb = new EmbeddingTable(join(modelDir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype);
    const model = await OrtModel.load(modelDir, m, 'cpu', emb, { threads });
    if (!m.files.tokenizer) throw new Error(`${modelDir}: the model has no tokenizer`);
    return new ArDecoder(m, model, TextTokenizer.fromFile(join(modelDir, m.files.tokenizer)));
  }

  async ask(png: Uint8Array, question: string, maxNewTokens: number): Promise<ArResult> {
    const t0 = performance.now();
    const m = this.m;
    const h = m.text.hiddenSize;
    const pre = await preprocessImage(png, preprocessOptionsFor(m.image, m.vision));
    const feats = await encodeQwenVL(this.model, m.vision, pre.pixelValues, pre.gridThw);
    const ids = tokenizeWithImages(chatPrompt(question, 1), (t) => this.tok.encode(t), m.tokens.imagePlaceholder);
    const imageRows = feats.length / h;
    const promptLen = ids.length - 1 + imageRows;
    const embeds = new Float32Array(promptLen * h);
    let row = 0;
    for (const id of ids) {
      if (id === m.tokens.imagePlaceholder) {
        embeds.set(feats, row * h);
        row += imageRows;
      } else this.model.embedRow(id, embeds, row++ * h);
    }
    const cache = this.model.createCache(promptLen + maxNewTokens);
    let input = embeds;
    let pos = range(0, promptLen);
    const out: number[] = [];
    let forwards = 0;
    while (out.length < maxNewTokens) {
      const hidden = await this.model.decode(input, pos, blockCausal(1), cache, { commitRows: pos.length, outputRows: [pos.length - 1] });
      forwards++;
      const head = await this.model.head(hidden!, false);
      const next = head.ids[0];
      out.push(next);
      if (next === m.tokens.eos) break;
      input = new Float32Array(h);
      this.model.embedRow(next, input, 0);
      pos = [cache.length];
    }
    const eos = out.indexOf(m.tokens.eos);
    return { text: this.tok.decode(eos < 0 ? out : out.slice(0, eos)), ids: out, forwards, totalMs: performance.now() - t0 };
  }

  async dispose(): Promise<void> {
    await this.model.release();
  }
}
