import { copyFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { computeTypeOf } from './layers';
import { f32ToF16Array, halfToFloat } from '../engine/half';
import { MANIFEST_FILE, type SiglipManifest } from '../engine/manifest';
import { sha256File } from './fileHash';
import { buildDecoder, buildLmHead } from './qwen2';
import { buildSiglipVision } from './siglip';
import { expectedSiglipTensors, type SiglipCheckpoint } from './siglipCheckpoint';
import { chooseTokenizer, CONVERTER_VERSION, IMAGE_PLACEHOLDER, writeRows, type ConvertOptions, type ConvertProgress } from './convert';

/** Writes the converted SigLIP model into `dir` (the caller renames it into place). */
export async function convertSiglipInto(ckpt: SiglipCheckpoint, dir: string, opts: ConvertOptions): Promise<SiglipManifest> {
  const cfg = ckpt.config;
  const progress = opts.onProgress ?? (() => {});
  opts.onNotice?.(`vision tower config: ${cfg.visionConfigSource}; weights: ${ckpt.towerWeights === 'checkpoint' ? 'from the checkpoint' : ckpt.towerWeights}`);
  for (const d of cfg.defaulted) opts.onNotice?.(`config: ${d} (default)`);
  for (const w of cfg.warnings) opts.onNotice?.(`config: ${w}`);
  const precision = opts.precision;
  const compute = computeTypeOf(precision);
  const kvDtype = compute;

  const tokenizerSource = await chooseTokenizer(ckpt, opts.tokenizer);
  const hashed = [...ckpt.files, { name: 'tokenizer.json', path: tokenizerSource, bytes: (await stat(tokenizerSource)).size }];
  const sources = [];
  for (const [i, f] of hashed.entries()) {
    progress({ stage: 'hash', done: i, total: hashed.length, tensor: f.name });
    sources.push({ name: f.name, bytes: f.bytes, sha256: await sha256File(f.path) });
  }

  const total = expectedSiglipTensors(cfg).length + 1;
  let done = 0;
  const stageOpts = (stage: ConvertProgress['stage']) => ({ precision, compute, kvDtype, onTensor: (tensor: string) => progress({ stage, done: done++, total, tensor }) });
  await buildSiglipVision(ckpt, cfg, join(dir, 'vision.onnx'), stageOpts('vision'));
  await buildDecoder(ckpt, cfg, join(dir, 'decoder.onnx'), stageOpts('decoder'));
  await buildLmHead(ckpt, cfg, join(dir, 'lm_head.onnx'), stageOpts('lm_head'));

  // The newline row is spliced by the engine; it carries the model dtype's rounding like every other feature row.
  const newline = await ckpt.readF32('model.image_newline', [cfg.text.hiddenSize]);
  writeRows(join(dir, 'image_newline.bin'), precision === 'fp16' ? roundToHalf(newline) : newline, newline.length, 'float32');

  const embDtype = precision === 'fp32' ? 'float32' : 'float16';
  progress({ stage: 'embeddings', done: done++, total, tensor: 'model.embed_tokens.weight' });
  {
    const { vocabSize: V, hiddenSize: H } = cfg.text;
    writeRows(join(dir, 'embeddings.bin'), await ckpt.readF32('model.embed_tokens.weight', [V, H]), H, embDtype);
  }
  progress({ stage: 'tokenizer', done, total });
  await copyFile(tokenizerSource, join(dir, 'tokenizer.json'));

  const t = cfg.text;
  const manifest: SiglipManifest = {
    format: 'diffusionvl-onnx',
    formatVersion: 1,
    architecture: 'diffusionvl_qwen',
    precision,
    kvDtype,
    blockSize: cfg.bd3lm.blockSize,
    text: {
      hiddenSize: t.hiddenSize,
      numLayers: t.numLayers,
      numHeads: t.numHeads,
      numKvHeads: t.numKvHeads,
      headDim: t.headDim,
      intermediateSize: t.intermediateSize,
      vocabSize: t.vocabSize,
      ropeTheta: t.ropeTheta,
      rmsNormEps: t.rmsNormEps,
      tiedLmHead: t.tieWordEmbeddings,
    },
    vision: { ...cfg.vision },
    image: { ...cfg.anyres, gridPinpoints: cfg.anyres.gridPinpoints.map((p) => [p[0], p[1]] as [number, number]), newlineFile: 'image_newline.bin' },
    ...(cfg.maxPromptRows !== undefined ? { maxPromptRows: cfg.maxPromptRows } : {}),
    tokens: { mask: cfg.tokens.mask, eos: cfg.tokens.eos, pad: cfg.tokens.pad, imagePlaceholder: IMAGE_PLACEHOLDER },
    files: { decoder: 'decoder.onnx', lmHead: 'lm_head.onnx', vision: 'vision.onnx', tokenizer: 'tokenizer.json' },
    embeddings: { file: 'embeddings.bin', dtype: embDtype, rows: t.vocabSize, cols: t.hiddenSize },
    source: { files: sources },
    converter: { name: 'diffusionvl-vscode', version: CONVERTER_VERSION },
  };
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  progress({ stage: 'done', done: total, total });
  return manifest;
}

function roundToHalf(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  halfToFloat(f32ToF16Array(x), out);
  return out;
}
