/**
 * The generation options a request may carry, with their defaults and limits: the one table the engine resolves
 * against, the CLI's help and flags read, the sidecar validates wire requests with, and the extension's
 * `contributes.configuration` is checked against (test/generationOptions.test.ts). Deliberately import-light so the
 * protocol types can re-export {@link GenerationOptions}.
 */
import { DiffusionVLError } from './errors';

export type RemaskingStrategy = 'static' | 'dynamic';
export const REMASKING_STRATEGIES: readonly RemaskingStrategy[] = ['static', 'dynamic'];
export const DEFAULT_STRATEGY: RemaskingStrategy = 'static';

/** Options of one generation (all optional; {@link GENERATION_OPTIONS} holds the defaults). Also the wire type. */
export interface GenerationOptions {
  /** Tokens to generate (G). */
  maxNewTokens?: number;
  /** Denoising steps per block (S). */
  steps?: number;
  strategy?: RemaskingStrategy;
  /** Confidence threshold of the dynamic strategy. */
  threshold?: number;
  /** Override the model's block size (B). */
  blockSize?: number;
  /** 0 = greedy. */
  temperature?: number;
  /** 0 = no top-k filter. */
  topK?: number;
  /** Nucleus mass kept, in (0, 1]; 1 = no filter. */
  topP?: number;
  /** Sampling seed (used when temperature > 0). */
  seed?: number;
  /**
   * Verified multi-step decoding: denoising states per forward (the current one and drafts of the next steps, each
   * kept only when the real step reaches it; same tokens as 1). `auto`: what this device makes cheap.
   */
  verifySteps?: VerifySteps;
}

export type VerifySteps = number | 'auto';
/** Limits of {@link GenerationOptions.verifySteps}: `auto` or an integer in [min, max] (1 = one state per forward). */
export const VERIFY_STEPS = { default: 'auto' as VerifySteps, min: 1, max: 16 } as const;

export type NumericOption = Exclude<keyof GenerationOptions, 'strategy' | 'verifySteps'>;

export interface NumericRule {
  /** Absent for blockSize: the model's own block size applies. */
  default?: number;
  min: number;
  /** True when `min` itself is not allowed (topP: 0 would keep no token). */
  minExclusive?: boolean;
  max: number;
  integer: boolean;
}

export const GENERATION_OPTIONS: Readonly<Record<NumericOption, Readonly<NumericRule>>> = {
  maxNewTokens: { default: 128, min: 1, max: 4096, integer: true },
  steps: { default: 8, min: 1, max: 256, integer: true },
  threshold: { default: 0.85, min: 0, max: 1, integer: false },
  blockSize: { min: 1, max: 1024, integer: true },
  temperature: { default: 0, min: 0, max: 100, integer: false },
  topK: { default: 0, min: 0, max: 1_000_000, integer: true },
  topP: { default: 1, min: 0, minExclusive: true, max: 1, integer: false },
  seed: { default: 0, min: 0, max: 2 ** 32 - 1, integer: true },
};

/** "an integer in [1, 4096]", "a number in (0, 1]". */
export function describeRule(rule: NumericRule): string {
  return `${rule.integer ? 'an integer' : 'a number'} in ${rule.minExclusive ? '(' : '['}${rule.min}, ${rule.max}]`;
}

/** Throws an `options` error unless `value` satisfies the rule of option `name`. */
export function checkNumericOption(name: NumericOption, value: unknown): number {
  const rule = GENERATION_OPTIONS[name];
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!rule.integer || Number.isInteger(value)) &&
    (rule.minExclusive ? value > rule.min : value >= rule.min) &&
    value <= rule.max;
  if (!ok) throw new DiffusionVLError('options', `${name} must be ${describeRule(rule)}, got ${JSON.stringify(value) ?? String(value)}`);
  return value;
}

export function checkStrategy(value: unknown): RemaskingStrategy {
  if (!REMASKING_STRATEGIES.includes(value as RemaskingStrategy)) {
    throw new DiffusionVLError('options', `strategy must be ${REMASKING_STRATEGIES.map((s) => `"${s}"`).join(' or ')}, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value as RemaskingStrategy;
}

export function checkVerifySteps(value: unknown): VerifySteps {
  if (value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= VERIFY_STEPS.min && value <= VERIFY_STEPS.max)) return value;
  throw new DiffusionVLError('options', `verifySteps must be "auto" or an integer in [${VERIFY_STEPS.min}, ${VERIFY_STEPS.max}], got ${JSON.stringify(value) ?? String(value)}`);
}

/** A verifySteps value from text (a flag, a setting): `auto` or an integer; anything else is an `options` error. */
export function parseVerifySteps(value: unknown): VerifySteps {
  return checkVerifySteps(typeof value === 'string' && value !== 'auto' ? (value.trim() === '' ? NaN : Number(value)) : value);
}

/**
 * Checks untrusted options (a wire request) field by field. Unknown fields are refused so a typo does not pass
 * silently; null/undefined fields mean "default".
 */
export function checkGenerationOptions(raw: unknown): GenerationOptions {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new DiffusionVLError('options', 'options must be an object');
  const out: GenerationOptions = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (value === undefined || value === null) continue;
    if (key === 'strategy') out.strategy = checkStrategy(value);
    else if (key === 'verifySteps') out.verifySteps = checkVerifySteps(value);
    else if (Object.hasOwn(GENERATION_OPTIONS, key)) out[key as NumericOption] = checkNumericOption(key as NumericOption, value);
    else throw new DiffusionVLError('options', `${key}: unknown option (known: ${['strategy', 'verifySteps', ...Object.keys(GENERATION_OPTIONS)].join(', ')})`);
  }
  return out;
}
