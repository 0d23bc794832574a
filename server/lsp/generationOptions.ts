import type { GenerationOptions as EngineOptions } from '../engine/api';
import type { GenerationOptions } from '../protocol';
import { rpcError } from './errors';

type Rule = { int?: boolean; min: number; max: number };
const RULES: Record<Exclude<keyof GenerationOptions, 'strategy'>, Rule> = {
  maxNewTokens: { int: true, min: 1, max: 4096 },
  steps: { int: true, min: 1, max: 1024 },
  threshold: { min: 0, max: 1 },
  blockSize: { int: true, min: 1, max: 1024 },
  temperature: { min: 0, max: 100 },
  topK: { int: true, min: 0, max: 1_000_000 },
  topP: { min: 0, max: 1 },
  seed: { int: true, min: 0, max: 2 ** 32 - 1 },
};

/** Checks client options field by field (unknown fields are rejected so typos do not pass silently). */
export function toEngineOptions(raw: unknown): EngineOptions {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw rpcError('InvalidParams', 'options must be an object');
  const out: EngineOptions = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (value === undefined || value === null) continue;
    if (key === 'strategy') {
      if (value !== 'static' && value !== 'dynamic') throw rpcError('InvalidParams', 'options.strategy must be "static" or "dynamic"');
      out.strategy = value;
      continue;
    }
    const rule = RULES[key as keyof typeof RULES] as Rule | undefined;
    if (!rule) throw rpcError('InvalidParams', `options.${key}: unknown option`);
    if (typeof value !== 'number' || !Number.isFinite(value) || (rule.int && !Number.isInteger(value)) || value < rule.min || value > rule.max) {
      throw rpcError('InvalidParams', `options.${key} must be ${rule.int ? 'an integer' : 'a number'} in [${rule.min}, ${rule.max}]`);
    }
    (out as Record<string, number>)[key] = value;
  }
  return out;
}
