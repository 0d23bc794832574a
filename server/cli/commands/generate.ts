import { resolve } from 'node:path';
import { createEngine } from '../../engine/engine';
import { DECODER_BACKENDS, DEFAULT_BACKEND, DEFAULT_PROVIDER, EXECUTION_PROVIDERS, type DecoderBackend, type ExecutionProvider, type RunOptions } from '../../engine/api';
import { checkNumericOption, checkStrategy, parseVerifySteps, describeRule, GENERATION_OPTIONS as G, VERIFY_STEPS, type NumericOption, type VerifySteps } from '../../engine/generationOptions';
import { intFlag, parse, UsageError, type Command } from '../command';

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
  backend: { type: 'string' },
  threads: { type: 'string' },
  'verify-steps': { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof generationFlags]?: (typeof generationFlags)[K]['type'] extends 'boolean' ? boolean : string };

/** A numeric flag checked against the engine's table of limits; absent means the engine's default. */
export function optionFlag(name: NumericOption, flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  try {
    return checkNumericOption(name, raw.trim() === '' ? NaN : Number(raw));
  } catch {
    throw new UsageError(`--${flag} must be ${describeRule(G[name])}, got "${raw}"`);
  }
}

/** Run options from the shared flags; `maxNewTokens` comes from the command's own length flag. */
export function generationOptions(v: FlagValues, maxNewTokens: number | undefined): RunOptions {
  let strategy: RunOptions['strategy'];
  try {
    strategy = v.strategy === undefined ? undefined : checkStrategy(v.strategy);
  } catch (err) {
    throw new UsageError(`--${(err as Error).message}`);
  }
  // Left unset when not given: each architecture has its own default (see RunOptions.alpha).
  const alpha = v.alpha;
  if (alpha !== undefined && alpha !== 'white' && alpha !== 'drop') throw new UsageError(`--alpha must be "white" or "drop", got "${alpha}"`);
  const opts: RunOptions = {
    maxNewTokens,
    steps: optionFlag('steps', 'steps', v.steps),
    strategy,
    threshold: optionFlag('threshold', 'threshold', v.threshold),
    blockSize: optionFlag('blockSize', 'block-size', v['block-size']),
    temperature: optionFlag('temperature', 'temperature', v.temperature),
    topK: optionFlag('topK', 'top-k', v['top-k']),
    topP: optionFlag('topP', 'top-p', v['top-p']),
    seed: optionFlag('seed', 'seed', v.seed),
    verifySteps: verifyStepsFlag(v['verify-steps']),
    fusedCommit: !v['no-fused-commit'],
    noKvCache: !!v['no-kv-cache'],
    alpha,
  };
  for (const k of Object.keys(opts) as (keyof RunOptions)[]) if (opts[k] === undefined) delete opts[k];
  return opts;
}

/** `--verify-steps auto|K`; absent means the engine's default (auto). */
export function verifyStepsFlag(raw: string | undefined): VerifySteps | undefined {
  if (raw === undefined) return undefined;
  try {
    return parseVerifySteps(raw);
  } catch {
    throw new UsageError(`--verify-steps must be "auto" or an integer in [${VERIFY_STEPS.min}, ${VERIFY_STEPS.max}], got "${raw}"`);
  }
}

export function providerFlag(value: string | undefined): ExecutionProvider {
  const p = (value ?? DEFAULT_PROVIDER) as ExecutionProvider;
  if (!EXECUTION_PROVIDERS.includes(p)) throw new UsageError(`--provider must be one of ${EXECUTION_PROVIDERS.join(', ')}, got "${value}"`);
  return p;
}

export function backendFlag(value: string | undefined): DecoderBackend {
  const b = (value ?? DEFAULT_BACKEND) as DecoderBackend;
  if (!DECODER_BACKENDS.includes(b)) throw new UsageError(`--backend must be one of ${DECODER_BACKENDS.join(', ')}, got "${value}"`);
  return b;
}

/** Help line of --backend (generate, ask, serve, mcp, eval-synthetic). */
export const backendHelp = `  --backend B            ${DECODER_BACKENDS.join('|')}: the text decoder's runtime (default ${DEFAULT_BACKEND}: llama.cpp when
                         the model folder has a GGUF decoder, else ONNX Runtime; falls back to ONNX Runtime with a reason)`;

/** Help lines for the shared flags, defaults and limits from the engine's table. */
export const generationHelp = `  --steps S              denoising steps per block (default ${G.steps.default}, max ${G.steps.max})
  --strategy static|dynamic   remasking strategy (default static)
  --threshold T          confidence threshold for dynamic (default ${G.threshold.default})
  --block-size B         override the model's block size
  --no-fused-commit      run each block's commit as its own forward pass (the official call pattern)
  --no-kv-cache          recompute the whole sequence every pass (slow; for comparisons)
  --temperature T, --top-k K, --top-p P, --seed N   sampling (default greedy; top-p in (0, 1])
  --verify-steps auto|K  denoising states per forward: the current one and drafts of the next K-1 steps, each kept
                         only if the real step reaches it (same tokens as 1 = one state per forward; default auto:
                         what this device makes cheap, measured once per model)
  --alpha white|drop     transparency: composite over white or drop alpha like the official processor (default:
                         white for QwenVL models, drop — the official behaviour — for the SigLIP model)
  --provider P           ${EXECUTION_PROVIDERS.join('|')} (default ${DEFAULT_PROVIDER}; falls back to cpu with a reason)
${backendHelp}
  --threads N            ONNX Runtime intra-op threads (and llama.cpp's)`;

export function threadsFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = intFlag(value, 'threads', 0);
  if (n < 1) throw new UsageError('--threads must be at least 1');
  return n;
}

const usage = `Usage: diffusionvl generate --model <converted-dir> --prompt-ids '<JSON ids>' [--image <file>]… [options]

Runs block-diffusion generation on raw prompt ids (-200 marks where each --image goes, in order) and prints the
generated ids: exactly --gen-length of them, MASK ids kept where generation stopped early, as the official code
returns them. It runs one denoising state per forward (the official call pattern) unless --verify-steps is given.

Options:
  --gen-length N         tokens to generate (default ${G.maxNewTokens.default}, max ${G.maxNewTokens.max})
${generationHelp}
  --image-aspect-ratio pad|anyres_max_N   SigLIP model: override the config's image handling (the official
                         evaluation driver uses pad whenever a prompt has several images)
  --json                 print one line: {"output_ids":[…],"forwards":{"prefill":n,"denoise":n,"commit":n},"backend":"onnx|llama.cpp",
                         "drafts":{"verified":n,"accepted":n},"verify_steps":K,"tokens_per_forward":x}`;

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
    const options = generationOptions(values, optionFlag('maxNewTokens', 'gen-length', values['gen-length']));
    if (values['image-aspect-ratio'] !== undefined) options.imageAspectRatio = values['image-aspect-ratio'];
    // A replay counts the official call pattern's forwards unless drafts are asked for: never a measured choice.
    options.verifySteps ??= 1;
    const engine = await createEngine({
      modelDir: resolve(values.model),
      provider: providerFlag(values.provider),
      backend: backendFlag(values.backend),
      threads: threadsFlag(values.threads),
    });
    try {
      const images = (values.image ?? []).map((p) => ({ path: resolve(p) }));
      const r = await engine.generateIds({ promptIds: promptIds as number[], images, options });
      const { prefill, denoise, commit, draftsVerified = 0, draftsAccepted = 0 } = r.stats.forwards;
      const verify = r.stats.verify;
      if (values.json) {
        // A contract with outside checks: these keys, in this order, on one line (keys are only ever added).
        const drafts = { verified: draftsVerified, accepted: draftsAccepted };
        console.log(JSON.stringify({ output_ids: r.outputIds, forwards: { prefill, denoise, commit }, backend: engine.info.backend, drafts, verify_steps: verify.k, tokens_per_forward: r.stats.tokensPerForward }));
      } else {
        console.log(`output_ids: ${JSON.stringify(r.outputIds)}`);
        if (r.text) console.log(`text: ${JSON.stringify(r.text)}`);
        console.log(`forwards: prefill ${prefill}, denoise ${denoise}, commit ${commit}${r.stats.forwards.fusedCommits ? ` (${r.stats.forwards.fusedCommits} commits fused into denoising passes)` : ''}`);
        console.log(`verify steps: K = ${verify.k} (${verify.reason}); drafts accepted ${draftsAccepted} of ${draftsVerified}; ${r.stats.tokensPerForward.toFixed(2)} tokens per forward`);
        console.log(`provider: ${engine.info.provider} (${engine.info.providerReason}); decoder: ${engine.info.backend} (${engine.info.backendReason}); ${r.stats.timings.totalMs.toFixed(0)} ms`);
      }
      return 0;
    } finally {
      await engine.dispose();
    }
  },
};
