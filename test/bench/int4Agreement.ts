/**
 * `npm run bench:int4 [-- --seed N] [--count K]`: int4 against fp32 on the trained default model.
 *
 * `models/default` ships converted (fp32); its checkpoint is not in the repository. This rebuilds that checkpoint
 * from the fp32 graphs (the converter's fusions and transposes undone, release layout), proves it by converting
 * it back to fp32 and comparing every weight byte with the committed model, converts it to int4 with the current
 * converter, and answers K fresh synthetic questions with both: answer accuracy and token agreement.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { convertCheckpoint } from '../../server/converter/convert';
import { qwen2TensorMap } from '../../server/converter/gguf/qwen2Gguf';
import { Qwen2Readback } from '../../server/converter/qwen2Readback';
import { OnnxInitializers } from '../../server/onnx/initializers';
import { writeSafetensors, type TensorSource } from '../helpers/checkpoint/safetensorsWriter';
import type { GenerationResult } from '../../server/engine/api';
import { createEngine } from '../../server/engine/engine';
import { asQwenVL, onnxDecoderFiles, readManifest, type QwenVLManifest as ModelManifest } from '../../server/engine/manifest';
import { drawItems, isCorrect } from '../../server/synthetic/generator';
import { renderPng } from '../../server/synthetic/render';
import { repoRoot } from '../helpers/paths';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);
const source = join(repoRoot, 'models', 'default');
const work = join(repoRoot, '.cache', 'bench-int4');


/** W [n, k] from a stored Wᵀ [k, n], optionally only columns [c0, c1) of Wᵀ (rows of W). */
function untranspose(t: { dims: number[]; data: Float32Array }, c0 = 0, c1 = t.dims[1]): Float32Array {
  const [k, n] = t.dims;
  const out = new Float32Array((c1 - c0) * k);
  for (let r = c0; r < c1; r++) for (let c = 0; c < k; c++) out[(r - c0) * k + c] = t.data[c * n + r];
  return out;
}

async function rebuildCheckpoint(m: ModelManifest, dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const tensors: TensorSource[] = [];
  const add = (name: string, shape: number[], data: Float32Array) =>
    tensors.push({ name, dtype: 'F32', shape, open: () => (chunk, start) => chunk.set(data.subarray(start, start + chunk.length)) });
  // The text model: read back exactly from the fp32 decoder, head and embedding table (the converter's own reader).
  const t = m.text;
  const text = new Qwen2Readback(source, m, onnxDecoderFiles(m));
  for (const { source: name, shape } of qwen2TensorMap({ ...t, tieWordEmbeddings: t.tiedLmHead })) add(name, shape, await text.readF32(name, shape));

  const vis = new OnnxInitializers(join(source, m.files.vision));
  const get = (g: OnnxInitializers, name: string) => g.readF32(name);
  const v = m.vision;
  const vp = 'model.vision_tower.vision_tower.';
  const C = v.hiddenSize;
  add(`${vp}patch_embed.proj.weight`, [C, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize], untranspose(get(vis, 'vision.patch_embed.T')));
  for (let i = 0; i < v.depth; i++) {
    const p = `vision.blocks.${i}.`;
    const o = `${vp}blocks.${i}.`;
    for (const n of ['norm1', 'norm2']) add(`${o}${n}.weight`, [C], get(vis, `${p}${n}.weight`).data);
    add(`${o}attn.qkv.weight`, [3 * C, C], untranspose(get(vis, `${p}attn.qkv.T`)));
    add(`${o}attn.qkv.bias`, [3 * C], get(vis, `${p}attn.qkv.bias`).data);
    add(`${o}attn.proj.weight`, [C, C], untranspose(get(vis, `${p}attn.proj.T`)));
    add(`${o}attn.proj.bias`, [C], get(vis, `${p}attn.proj.bias`).data);
    const I = v.intermediateSize;
    const gu = get(vis, `${p}mlp.gate_up_proj.T`);
    const gub = get(vis, `${p}mlp.gate_up_proj.bias`).data;
    add(`${o}mlp.gate_proj.weight`, [I, C], untranspose(gu, 0, I));
    add(`${o}mlp.up_proj.weight`, [I, C], untranspose(gu, I));
    add(`${o}mlp.gate_proj.bias`, [I], gub.slice(0, I));
    add(`${o}mlp.up_proj.bias`, [I], gub.slice(I));
    add(`${o}mlp.down_proj.weight`, [C, I], untranspose(get(vis, `${p}mlp.down_proj.T`)));
    add(`${o}mlp.down_proj.bias`, [C], get(vis, `${p}mlp.down_proj.bias`).data);
  }
  const M = C * v.spatialMergeSize ** 2;
  const pp = 'model.mm_projector.merger.';
  add(`${pp}ln_q.weight`, [C], get(vis, 'projector.ln_q.weight').data);
  add(`${pp}mlp.0.weight`, [M, M], untranspose(get(vis, 'projector.mlp.0.T')));
  add(`${pp}mlp.0.bias`, [M], get(vis, 'projector.mlp.0.bias').data);
  add(`${pp}mlp.2.weight`, [v.outHiddenSize, M], untranspose(get(vis, 'projector.mlp.2.T')));
  add(`${pp}mlp.2.bias`, [v.outHiddenSize], get(vis, 'projector.mlp.2.bias').data);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);

  const textConfig = {
    model_type: 'qwen2_5_vl_text',
    vocab_size: t.vocabSize,
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numLayers,
    num_attention_heads: t.numHeads,
    num_key_value_heads: t.numKvHeads,
    rms_norm_eps: t.rmsNormEps,
    rope_theta: t.ropeTheta,
    tie_word_embeddings: t.tiedLmHead,
    eos_token_id: m.tokens.eos,
    pad_token_id: m.tokens.pad,
  };
  const config = {
    architectures: ['DiffusionVLQwenVLForCausalLM'],
    ...textConfig,
    model_type: 'diffusionvl_qwenvl',
    text_config: textConfig,
    vision_config: {
      depth: v.depth,
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_heads: v.numHeads,
      in_channels: v.inChannels,
      patch_size: v.patchSize,
      spatial_merge_size: v.spatialMergeSize,
      temporal_patch_size: v.temporalPatchSize,
      window_size: v.windowSize,
      out_hidden_size: v.outHiddenSize,
      fullatt_block_indexes: v.fullAttentionBlocks,
    },
    enable_bd3lm: true,
    bd3lm_block_size: m.blockSize,
    mask_token_id: m.tokens.mask,
    min_pixels: m.image.minPixels,
    max_pixels: m.image.maxPixels,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ image_mean: m.image.mean, image_std: m.image.std, patch_size: v.patchSize, merge_size: v.spatialMergeSize, temporal_patch_size: v.temporalPatchSize }));
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(source, m.files.tokenizer!)));
}

/** The rebuilt checkpoint converts back to exactly the committed weights (same graphs' data, same embeddings). */
function checkRoundTrip(m: ModelManifest, dir: string): void {
  for (const f of [onnxDecoderFiles(m).decoder, onnxDecoderFiles(m).lmHead, m.files.vision].map((x) => `${x}.data`).concat(m.embeddings.file)) {
    if (!readFileSync(join(source, f)).equals(readFileSync(join(dir, f)))) throw new Error(`round trip: ${f} differs from the committed model`);
  }
}

async function main(): Promise<void> {
  const seed = Number(opt('seed', '1'));
  const count = Number(opt('count', '100'));
  const m = asQwenVL(readManifest(source));
  const ckpt = join(work, 'checkpoint');
  await rebuildCheckpoint(m, ckpt);
  await convertCheckpoint(ckpt, join(work, 'fp32'), { precision: 'fp32' });
  checkRoundTrip(m, join(work, 'fp32'));
  await convertCheckpoint(ckpt, join(work, 'int4'), { precision: 'int4' });
  console.log(`checkpoint rebuilt from ${source} (fp32 reconversion identical to the committed weights); int4 converted`);

  const items = drawItems(seed, 'eval', count);
  const pngs = await Promise.all(items.map((it) => renderPng(it.svg)));
  const e32 = await createEngine({ modelDir: source, provider: 'cpu', threads: 1 });
  const e4 = await createEngine({ modelDir: join(work, 'int4'), provider: 'cpu', threads: 1 });
  let ok32 = 0;
  let ok4 = 0;
  let same = 0;
  let tokens = 0;
  let sameTokens = 0;
  try {
    for (const [i, it] of items.entries()) {
      const options = { maxNewTokens: 16, steps: m.blockSize, strategy: 'static' as const };
      const ask = (e: typeof e32): Promise<GenerationResult> => e.ask({ images: [{ bytes: pngs[i] }], question: it.question, options });
      const [a, b] = [await ask(e32), await ask(e4)];
      if (isCorrect(a.text, it.answer)) ok32++;
      if (isCorrect(b.text, it.answer)) ok4++;
      if (a.outputIds.every((id, k) => id === b.outputIds[k])) same++;
      tokens += a.outputIds.length;
      sameTokens += a.outputIds.filter((id, k) => id === b.outputIds[k]).length;
    }
  } finally {
    await Promise.all([e32.dispose(), e4.dispose()]);
  }
  const pct = (x: number, n: number) => `${((100 * x) / n).toFixed(1)} %`;
  console.log(`seed ${seed}, ${count} questions, static remasking, 16 tokens`);
  console.log(`accuracy        fp32 ${pct(ok32, count)}   int4 ${pct(ok4, count)}`);
  console.log(`same answer ids ${pct(same, count)} of questions; ${pct(sameTokens, tokens)} of tokens agree`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
