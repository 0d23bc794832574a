import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openCheckpoint, expectedTensors, readJson, type Checkpoint } from './checkpoint';
import { detectArchitecture } from './checkpointConfig';
import { convertSiglipInto } from './convertSiglip';
import { openSiglipCheckpoint } from './siglipCheckpoint';
import { buildVision } from './qwenvl';
import { computeTypeOf } from './layers';
import { MANIFEST_FILE, type ModelManifest } from '../engine/manifest';
import { hashSources, MODEL_FILES, textDims, writeEmbeddingsAndTokenizer } from './textSide';
import { chooseTokenizer, CONVERTER_VERSION, IMAGE_PLACEHOLDER, type ConvertOptions, type ConvertProgress } from './convertOptions';
import { textDecoderReads, writeTextDecoders } from './textDecoders';
import { writeFolderAtomically } from './outFolder';

export { chooseTokenizer, CONVERTER_VERSION, IMAGE_PLACEHOLDER, type ConvertOptions, type ConvertProgress } from './convertOptions';

/**
 * Converts a Hugging Face DiffusionVL checkpoint folder into the ONNX folder of docs/design.md, written whole or not
 * at all (writeFolderAtomically).
 */
export async function convertCheckpoint(checkpointDir: string, outDir: string, opts: ConvertOptions): Promise<ModelManifest> {
  const siglip = (await checkpointArchitecture(checkpointDir)) === 'diffusionvl_qwen';
  const ckpt = siglip ? await openSiglipCheckpoint(checkpointDir, { visionTower: opts.visionTower }) : await openCheckpoint(checkpointDir);
  try {
    return await writeFolderAtomically(outDir, (tmp) => ('towerWeights' in ckpt ? convertSiglipInto(ckpt, tmp, opts) : convertInto(ckpt, tmp, opts)));
  } finally {
    await ckpt.close();
  }
}

async function convertInto(ckpt: Checkpoint, dir: string, opts: ConvertOptions): Promise<ModelManifest> {
  const cfg = ckpt.config;
  const progress = opts.onProgress ?? (() => {});
  for (const d of cfg.defaulted) opts.onNotice?.(`config.json: ${d} (default)`);
  for (const w of cfg.warnings) opts.onNotice?.(`config: ${w}`);
  const precision = opts.precision;
  const compute = computeTypeOf(precision);
  const kvDtype = compute;

  const tokenizerSource = await chooseTokenizer(ckpt, opts.tokenizer);
  const sources = await hashSources(ckpt.files, tokenizerSource, progress);

  // One progress count per tensor read, across all graphs and files (the tied ONNX head reads the embedding again).
  const decoder = opts.decoder ?? 'onnx';
  const visionTensors = expectedTensors(cfg).length - (cfg.text.numLayers * 12 + 3);
  const total = visionTensors + textDecoderReads(cfg.text, decoder) + 1;
  let done = 0;
  const stageOpts = (stage: ConvertProgress['stage']) => ({
    precision,
    compute,
    kvDtype,
    onTensor: (tensor: string) => progress({ stage, done: done++, total, tensor }),
  });
  await buildVision(ckpt, cfg, join(dir, 'vision.onnx'), stageOpts('vision'));
  const text = await writeTextDecoders(ckpt, { dir, decoder, ggufType: opts.ggufType, text: cfg.text, tokens: cfg.tokens, checkpointDir: ckpt.dir, tokenizerSource, stageOpts, onNotice: opts.onNotice });

  const embeddings = await writeEmbeddingsAndTokenizer(ckpt, cfg.text, dir, precision, tokenizerSource, { done, total, progress });

  const manifest: ModelManifest = {
    format: 'diffusionvl-onnx',
    formatVersion: 1,
    architecture: 'diffusionvl_qwenvl',
    precision,
    kvDtype,
    blockSize: cfg.bd3lm.blockSize,
    text: textDims(cfg.text),
    vision: { ...cfg.vision, fullAttentionBlocks: [...cfg.vision.fullAttentionBlocks] },
    image: { minPixels: cfg.pixels.minPixels, maxPixels: cfg.pixels.maxPixels, mean: cfg.image.mean, std: cfg.image.std },
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

/** The family config.json names (read before anything else, to pick the checkpoint reader). */
async function checkpointArchitecture(dir: string): Promise<'diffusionvl_qwenvl' | 'diffusionvl_qwen'> {
  const path = join(resolve(dir), 'config.json');
  if (!existsSync(path)) return 'diffusionvl_qwenvl'; // the QwenVL reader gives the detailed message
  return detectArchitecture(await readJson(path));
}

