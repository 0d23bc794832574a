import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { computeTypeOf } from './layers';
import { f32ToF16Array, halfToFloat } from '../engine/half';
import { MANIFEST_FILE, type SiglipManifest } from '../engine/manifest';
import { buildSiglipVision } from './siglip';
import { expectedSiglipTensors, type SiglipCheckpoint } from './siglipCheckpoint';
import { chooseTokenizer, CONVERTER_VERSION, IMAGE_PLACEHOLDER, type ConvertOptions, type ConvertProgress } from './convertOptions';
import { textDecoderReads, writeTextDecoders } from './textDecoders';
import { hashSources, MODEL_FILES, textDims, writeEmbeddingsAndTokenizer, writeRows } from './textSide';

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
  const sources = await hashSources(ckpt.files, tokenizerSource, progress);

  const decoder = opts.decoder ?? 'onnx';
  const visionTensors = expectedSiglipTensors(cfg).length - (cfg.text.numLayers * 12 + 3);
  const total = visionTensors + textDecoderReads(cfg.text, decoder) + 1;
  let done = 0;
  const stageOpts = (stage: ConvertProgress['stage']) => ({ precision, compute, kvDtype, onTensor: (tensor: string) => progress({ stage, done: done++, total, tensor }) });
  await buildSiglipVision(ckpt, cfg, join(dir, 'vision.onnx'), stageOpts('vision'));
  const text = await writeTextDecoders(ckpt, { dir, decoder, ggufType: opts.ggufType, text: cfg.text, tokens: cfg.tokens, checkpointDir: ckpt.dir, tokenizerSource, stageOpts, onNotice: opts.onNotice });

  // The newline row is spliced by the engine; it carries the model dtype's rounding like every other feature row.
  const newline = await ckpt.readF32('model.image_newline', [cfg.text.hiddenSize]);
  writeRows(join(dir, 'image_newline.bin'), precision === 'fp16' ? roundToHalf(newline) : newline, newline.length, 'float32');

  const embeddings = await writeEmbeddingsAndTokenizer(ckpt, cfg.text, dir, precision, tokenizerSource, { done, total, progress });

  const manifest: SiglipManifest = {
    format: 'diffusionvl-onnx',
    formatVersion: 1,
    architecture: 'diffusionvl_qwen',
    precision,
    kvDtype,
    blockSize: cfg.bd3lm.blockSize,
    text: textDims(cfg.text),
    vision: { ...cfg.vision },
    image: { ...cfg.anyres, gridPinpoints: cfg.anyres.gridPinpoints.map((p) => [p[0], p[1]] as [number, number]), newlineFile: 'image_newline.bin' },
    ...(cfg.maxPromptRows !== undefined ? { maxPromptRows: cfg.maxPromptRows } : {}),
    tokens: { mask: cfg.tokens.mask, eos: cfg.tokens.eos, pad: cfg.tokens.pad, imagePlaceholder: IMAGE_PLACEHOLDER },
    files: { vision: MODEL_FILES.vision, tokenizer: MODEL_FILES.tokenizer, ...text.files },
    decoders: text.decoders,
    embeddings,
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
