import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunOptions } from '../../server/engine/api';
import { fixturesDir, goldenDir } from './paths';

/** The official generation cases (compact copy: prompts, settings, outputs and forward counts). */
export interface GoldenCase {
  prompt_ids: number[];
  image: string | null;
  gen_kwargs: { gen_length: number; steps: number; temperature: number; remasking_strategy: string; confidence_threshold?: number };
  block_size: number;
  prompt_len_after_splice: number;
  output_ids: number[];
  forwards: { prefill: number; denoise: number; commit: number };
}

export function goldenCases(): Record<string, GoldenCase> {
  return (JSON.parse(readFileSync(join(goldenDir, 'generate.json'), 'utf8')) as { cases: Record<string, GoldenCase> }).cases;
}

export function caseImagePath(c: GoldenCase): string[] {
  return c.image ? [join(goldenDir, 'images', `${c.image}.png`)] : [];
}

export function caseOptions(c: GoldenCase): RunOptions {
  const k = c.gen_kwargs;
  return {
    maxNewTokens: k.gen_length,
    steps: k.steps,
    strategy: k.remasking_strategy === 'low_confidence_dynamic' ? 'dynamic' : 'static',
    threshold: k.confidence_threshold ?? 0.85,
    blockSize: c.block_size,
    temperature: k.temperature,
    // The official call pattern: one denoising state per forward (the forward counts are compared).
    verifySteps: 1,
  };
}

/** The SigLIP variant's official generation cases (`golden-siglip/generate.json`). */
export interface SiglipGoldenCase {
  prompt_ids: number[];
  images: string[];
  multi_image_mode?: string | null;
  gen_kwargs: { gen_length: number; steps: number; remasking_strategy: string; confidence_threshold?: number };
  block_size: number;
  output_ids: number[];
  forwards: { prefill: number; denoise: number; commit: number };
}

export const siglipGoldenDir = join(fixturesDir, 'golden-siglip');

export function siglipGoldenCases(): Record<string, SiglipGoldenCase> {
  return (JSON.parse(readFileSync(join(siglipGoldenDir, 'generate.json'), 'utf8')) as { cases: Record<string, SiglipGoldenCase> }).cases;
}

export function siglipCaseImages(c: SiglipGoldenCase): { path: string }[] {
  return c.images.map((f) => ({ path: join(siglipGoldenDir, 'images', f) }));
}

/** A SigLIP case's settings as the engine takes them: the official call pattern, no prefix reuse across cases. */
export function siglipCaseOptions(c: SiglipGoldenCase): RunOptions {
  const k = c.gen_kwargs;
  return {
    maxNewTokens: k.gen_length,
    steps: k.steps,
    strategy: k.remasking_strategy.endsWith('dynamic') ? 'dynamic' : 'static',
    threshold: k.confidence_threshold ?? 0.85,
    blockSize: c.block_size,
    prefixCache: false,
    verifySteps: 1,
    imageAspectRatio: c.multi_image_mode === 'driver_multi_image_pad' ? 'pad' : undefined,
  };
}
