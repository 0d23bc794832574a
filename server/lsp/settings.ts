import { DefaultPrompts, type ServerSettings } from '../protocol';

export const DEFAULT_SETTINGS: ServerSettings = {
  provider: 'auto',
  idleUnloadSeconds: 300,
  maxImageBytes: 32 * 1024 * 1024,
  hover: { enabled: true, prompt: DefaultPrompts.describe, maxNewTokens: 64 },
  altText: { prompt: DefaultPrompts.altText, maxChars: 125, maxNewTokens: 48 },
};

const PROVIDERS = new Set(['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown, min: number, max: number, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : fallback;
}

function str(v: unknown, fallback: string): string {
  return typeof v === 'string' && v.trim() !== '' ? v : fallback;
}

/** Merges untrusted client settings over `base`, keeping base values for anything missing or malformed. */
export function mergeSettings(base: ServerSettings, raw: unknown): ServerSettings {
  if (!isObject(raw)) return base;
  const hover = isObject(raw.hover) ? raw.hover : {};
  const alt = isObject(raw.altText) ? raw.altText : {};
  return {
    modelDir: raw.modelDir === null || raw.modelDir === '' ? undefined : typeof raw.modelDir === 'string' ? raw.modelDir : base.modelDir,
    provider: typeof raw.provider === 'string' && PROVIDERS.has(raw.provider) ? (raw.provider as ServerSettings['provider']) : base.provider,
    threads: raw.threads === null ? undefined : num(raw.threads, 1, 256, base.threads ?? 0) || undefined,
    idleUnloadSeconds: num(raw.idleUnloadSeconds, 0, 7 * 24 * 3600, base.idleUnloadSeconds),
    maxImageBytes: num(raw.maxImageBytes, 1024, 1024 * 1024 * 1024, base.maxImageBytes),
    hover: {
      enabled: typeof hover.enabled === 'boolean' ? hover.enabled : base.hover.enabled,
      prompt: str(hover.prompt, base.hover.prompt),
      maxNewTokens: num(hover.maxNewTokens, 1, 1024, base.hover.maxNewTokens),
    },
    altText: {
      prompt: str(alt.prompt, base.altText.prompt),
      maxChars: num(alt.maxChars, 16, 1000, base.altText.maxChars),
      maxNewTokens: num(alt.maxNewTokens, 1, 1024, base.altText.maxNewTokens),
    },
  };
}

/** True when the change needs the model reloaded. */
export function modelSettingsChanged(a: ServerSettings, b: ServerSettings): boolean {
  return a.modelDir !== b.modelDir || a.provider !== b.provider || a.threads !== b.threads;
}
