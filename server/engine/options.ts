import { InputError, type GenerationOptions, type RemaskingStrategy } from './api';

/** Generation options with defaults applied and checked (bad values are the caller's fault: InputError). */
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
  fusedCommit: boolean;
  noKvCache: boolean;
  prefixCache: boolean;
  alpha: 'white' | 'drop';
}

export function resolveOptions(o: GenerationOptions = {}, modelBlockSize: number): ResolvedOptions {
  const r: ResolvedOptions = {
    maxNewTokens: o.maxNewTokens ?? 128,
    steps: o.steps ?? 8,
    strategy: o.strategy ?? 'static',
    threshold: o.threshold ?? 0.85,
    blockSize: o.blockSize ?? modelBlockSize,
    temperature: o.temperature ?? 0,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    seed: o.seed ?? 0,
    fusedCommit: o.fusedCommit ?? true,
    noKvCache: o.noKvCache ?? false,
    prefixCache: o.prefixCache ?? true,
    alpha: o.alpha ?? 'white',
  };
  const posInt = (v: number, name: string, max = 1 << 20) => {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new InputError(`${name} must be an integer in 1..${max}, got ${v}`);
  };
  posInt(r.maxNewTokens, 'maxNewTokens', 8192);
  posInt(r.steps, 'steps', 4096);
  posInt(r.blockSize, 'blockSize', 8192);
  if (r.strategy !== 'static' && r.strategy !== 'dynamic') throw new InputError(`strategy must be "static" or "dynamic", got "${String(r.strategy)}"`);
  if (!Number.isFinite(r.threshold)) throw new InputError(`threshold must be a number, got ${r.threshold}`);
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) throw new InputError(`temperature must be ≥ 0, got ${r.temperature}`);
  if (!Number.isInteger(r.topK) || r.topK < 0) throw new InputError(`topK must be an integer ≥ 0, got ${r.topK}`);
  if (!(r.topP > 0 && r.topP <= 1)) throw new InputError(`topP must be in (0, 1], got ${r.topP}`);
  if (!Number.isFinite(r.seed)) throw new InputError(`seed must be a number, got ${r.seed}`);
  if (r.alpha !== 'white' && r.alpha !== 'drop') throw new InputError(`alpha must be "white" or "drop", got "${String(r.alpha)}"`);
  return r;
}
