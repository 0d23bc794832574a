import { resolve } from 'node:path';
import { createEngine } from '../../engine/engine';
import type { ExecutionProvider, GenerationOptions } from '../../engine/api';
import { intFlag, numFlag, parse, UsageError, type Command } from '../command';

const PROVIDERS: ExecutionProvider[] = ['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu'];

/** Flags shared by `generate` and `ask` (sampling, schedule, provider). */
export const generationFlags = {
  steps: { type: 'string' },
  strategy: { type: 'string' },
  threshold: { type: 'string' },
  'block-size': { type: 'string' },
  'no-fused-commit': { type: 'boolean' },
  'no-kv-cache': { type: 'boolean' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  alpha: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof generationFlags]?: (typeof generationFlags)[K]['type'] extends 'boolean' ? boolean : string };

export function generationOptions(v: FlagValues, maxNewTokens: number): GenerationOptions {
  const strategy = v.strategy ?? 'static';
  if (strategy !== 'static' && strategy !== 'dynamic') throw new UsageError(`--strategy must be "static" or "dynamic", got "${strategy}"`);
  // Left unset when not given: each architecture has its own default (see GenerationOptions.alpha).
  const alpha = v.alpha;
  if (alpha !== undefined && alpha !== 'white' && alpha !== 'drop') throw new UsageError(`--alpha must be "white" or "drop", got "${alpha}"`);
  const steps = intFlag(v.steps, 'steps', 8);
  if (steps < 1) throw new UsageError('--steps must be at least 1');
  if (maxNewTokens < 1) throw new UsageError('the number of new tokens must be at least 1');
  const opts: GenerationOptions = {
    maxNewTokens,
    steps,
    strategy,
    threshold: numFlag(v.threshold, 'threshold', 0.85),
    fusedCommit: !v['no-fused-commit'],
    noKvCache: !!v['no-kv-cache'],
    temperature: numFlag(v.temperature, 'temperature', 0),
    topK: intFlag(v['top-k'], 'top-k', 0),
    topP: numFlag(v['top-p'], 'top-p', 1),
    seed: intFlag(v.seed, 'seed', 0),
    alpha,
  };
  if (v['block-size'] !== undefined) opts.blockSize = intFlag(v['block-size'], 'block-size', 8);
  return opts;
}

export function providerFlag(value: string | undefined, fallback: ExecutionProvider): ExecutionProvider {
  const p = (value ?? fallback) as ExecutionProvider;
  if (!PROVIDERS.includes(p)) throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}, got "${value}"`);
  return p;
}

export function threadsFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = intFlag(value, 'threads', 0);
  if (n < 1) throw new UsageError('--threads must be at least 1');
  return n;
}

const usage = `Usage: diffusionvl generate --model <converted-dir> --prompt-ids '<JSON ids>' [--image <file>]… [options]

Runs block-diffusion generation on raw prompt ids (-200 marks where each --image goes, in order) and prints the
generated ids: exactly --gen-length of them, MASK ids kept where generation stopped early, as the official code
returns them.

Options:
  --gen-length N         tokens to generate (default 128)
  --steps S              denoising steps per block (default 8)
  --strategy static|dynamic   remasking strategy (default static)
  --threshold T          confidence threshold for dynamic (default 0.85)
  --block-size B         override the model's block size
  --no-fused-commit      run each block's commit as its own forward pass (the official call pattern)
  --no-kv-cache          recompute the whole sequence every pass (slow; for comparisons)
  --temperature T, --top-k K, --top-p P, --seed N   sampling (default greedy)
  --alpha white|drop     transparency: composite over white or drop alpha like the official processor (default:
                         white for QwenVL models, drop — the official behaviour — for the SigLIP model)
  --image-aspect-ratio pad|anyres_max_N   SigLIP model: override the config's image handling (the official
                         evaluation driver uses pad whenever a prompt has several images)
  --provider P           auto|cpu|cuda|dml|coreml|webgpu (default cpu; falls back to cpu with a reason)
  --threads N            ONNX Runtime intra-op threads
  --json                 print one line: {"output_ids":[…],"forwards":{"prefill":n,"denoise":n,"commit":n}}`;

export const generateCommand: Command = {
  name: 'generate',
  summary: 'Generate from raw prompt ids (with images at -200 placeholders); prints the output ids',
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      model: { type: 'string' },
      'prompt-ids': { type: 'string' },
      image: { type: 'string', multiple: true },
      'gen-length': { type: 'string' },
      'image-aspect-ratio': { type: 'string' },
      json: { type: 'boolean' },
      ...generationFlags,
    }, false);
    void positionals;
    if (!values.model) throw new UsageError('generate needs --model <converted-dir>');
    if (!values['prompt-ids']) throw new UsageError("generate needs --prompt-ids '[…]'");
    let promptIds: unknown;
    try {
      promptIds = JSON.parse(values['prompt-ids']);
    } catch {
      throw new UsageError('--prompt-ids must be a JSON array of integers');
    }
    if (!Array.isArray(promptIds) || promptIds.length === 0 || !promptIds.every((x) => Number.isInteger(x))) {
      throw new UsageError('--prompt-ids must be a non-empty JSON array of integers');
    }
    const options = generationOptions(values, intFlag(values['gen-length'], 'gen-length', 128));
    if (values['image-aspect-ratio'] !== undefined) options.imageAspectRatio = values['image-aspect-ratio'];
    const engine = await createEngine({
      modelDir: resolve(values.model),
      provider: providerFlag(values.provider, 'cpu'),
      threads: threadsFlag(values.threads),
    });
    try {
      const images = (values.image ?? []).map((p) => ({ path: resolve(p) }));
      const r = await engine.generateIds({ promptIds: promptIds as number[], images, options });
      const { prefill, denoise, commit } = r.stats.forwards;
      if (values.json) {
        // A contract with outside checks: exactly these keys, in this order, on one line.
        console.log(JSON.stringify({ output_ids: r.outputIds, forwards: { prefill, denoise, commit } }));
      } else {
        console.log(`output_ids: ${JSON.stringify(r.outputIds)}`);
        if (r.text) console.log(`text: ${JSON.stringify(r.text)}`);
        console.log(`forwards: prefill ${prefill}, denoise ${denoise}, commit ${commit}${r.stats.forwards.fusedCommits ? ` (${r.stats.forwards.fusedCommits} commits fused into denoising passes)` : ''}`);
        console.log(`provider: ${engine.info.provider} (${engine.info.providerReason}); ${r.stats.timings.totalMs.toFixed(0)} ms`);
      }
      return 0;
    } finally {
      await engine.dispose();
    }
  },
};
