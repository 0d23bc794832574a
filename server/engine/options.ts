import type { RunOptions } from './api';
import { DiffusionVLError } from './errors';
import { checkNumericOption, checkStrategy, checkVerifySteps, DEFAULT_STRATEGY, GENERATION_OPTIONS as G, VERIFY_STEPS, type RemaskingStrategy, type VerifySteps } from './generationOptions';

/** Generation options with defaults applied and checked against GENERATION_OPTIONS (bad values: an `options` error). */
export interface ResolvedOptions {
  maxNewTokens: number;
  steps: number;
  strategy: RemaskingStrategy;
  threshold: number;
  blockSize: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  verifySteps: VerifySteps;
  fusedCommit: boolean;
  noKvCache: boolean;
  prefixCache: boolean;
  alpha: 'white' | 'drop';
}

export function resolveOptions(o: RunOptions = {}, modelBlockSize: number): ResolvedOptions {
  const alpha = o.alpha ?? 'white';
  if (alpha !== 'white' && alpha !== 'drop') throw new DiffusionVLError('options', `alpha must be "white" or "drop", got "${String(alpha)}"`);
  return {
    maxNewTokens: checkNumericOption('maxNewTokens', o.maxNewTokens ?? G.maxNewTokens.default),
    steps: checkNumericOption('steps', o.steps ?? G.steps.default),
    strategy: checkStrategy(o.strategy ?? DEFAULT_STRATEGY),
    threshold: checkNumericOption('threshold', o.threshold ?? G.threshold.default),
    blockSize: checkNumericOption('blockSize', o.blockSize ?? modelBlockSize),
    temperature: checkNumericOption('temperature', o.temperature ?? G.temperature.default),
    topK: checkNumericOption('topK', o.topK ?? G.topK.default),
    topP: checkNumericOption('topP', o.topP ?? G.topP.default),
    seed: checkNumericOption('seed', o.seed ?? G.seed.default),
    verifySteps: checkVerifySteps(o.verifySteps ?? VERIFY_STEPS.default),
    fusedCommit: o.fusedCommit ?? true,
    noKvCache: o.noKvCache ?? false,
    prefixCache: o.prefixCache ?? true,
    alpha,
  };
}
