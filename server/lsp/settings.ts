import { DECODER_BACKENDS, DEFAULT_BACKEND, DEFAULT_PROVIDER, EXECUTION_PROVIDERS, type DecoderBackend, type ExecutionProvider } from '../engine/api';
import { checkNumericOption, checkStrategy, parseVerifySteps, GENERATION_OPTIONS as G, type GenerationOptions, type NumericOption, type RemaskingStrategy, type VerifySteps } from '../engine/generationOptions';
import { DefaultPrompts, SETTINGS_SECTION, type ServerSettings, type SettingsUpdate } from '../protocol';
import { normalizeServerUrl } from '../protocol/remoteServer';

/** Defaults of the server's settings; package.json's `contributes.configuration` is checked against these by a test. */
export const DEFAULT_SETTINGS: ServerSettings = {
  executionProvider: DEFAULT_PROVIDER,
  backend: DEFAULT_BACKEND,
  idleUnloadMinutes: 5,
  hover: { enabled: true, prompt: DefaultPrompts.describe, maxNewTokens: 64 },
  altText: { prompt: DefaultPrompts.altText, maxChars: 125, maxNewTokens: 48 },
  server: { url: '', model: '', allowed: false },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One field's rule: returns the accepted value, `undefined` to clear it, or throws a message naming the setting. */
type Rule<T> = (v: unknown, name: string) => T;

function num(min: number, max: number, integer = false): Rule<number> {
  return (v, name) => {
    if (typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v))) return v;
    throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(v)}`);
  };
}
const bool: Rule<boolean> = (v, name) => {
  if (typeof v === 'boolean') return v;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(v)}`);
};
const text: Rule<string> = (v, name) => {
  if (typeof v === 'string' && v.trim() !== '') return v;
  throw new Error(`${name} must be a non-empty string, got ${JSON.stringify(v)}`);
};
const provider: Rule<ExecutionProvider> = (v, name) => {
  if (EXECUTION_PROVIDERS.includes(v as ExecutionProvider)) return v as ExecutionProvider;
  throw new Error(`${name} must be one of ${EXECUTION_PROVIDERS.join(', ')}, got ${JSON.stringify(v)}`);
};
/** A remote server's base URL: '' (none) or http(s) without credentials in it (those would end up in logs). */
const serverUrl: Rule<string> = (v, name) => {
  if (v === '' || v === null) return '';
  const url = typeof v === 'string' ? normalizeServerUrl(v) : undefined;
  if (url) return url;
  throw new Error(`${name} must be an http:// or https:// URL without a user name, password or query (the API key has its own command), or empty`);
};
const backend: Rule<DecoderBackend> = (v, name) => {
  if (DECODER_BACKENDS.includes(v as DecoderBackend)) return v as DecoderBackend;
  throw new Error(`${name} must be one of ${DECODER_BACKENDS.join(', ')}, got ${JSON.stringify(v)}`);
};
/** A generation default, checked against the engine's table but reported under the setting's name. */
function option(name: NumericOption): Rule<number> {
  return (v, setting) => {
    try {
      return checkNumericOption(name, v);
    } catch (err) {
      throw new Error(`${setting}${(err as Error).message.slice(name.length)}`);
    }
  };
}
const remasking: Rule<RemaskingStrategy> = (v, setting) => {
  try {
    return checkStrategy(v);
  } catch (err) {
    throw new Error(`${setting}${(err as Error).message.slice('strategy'.length)}`);
  }
};
const verifySteps: Rule<VerifySteps> = (v, setting) => {
  try {
    return parseVerifySteps(v);
  } catch (err) {
    throw new Error(`${setting}${(err as Error).message.slice('verifySteps'.length)}`);
  }
};
/** Optional settings: null or '' clears them (back to the default behaviour). */
function optional<T>(rule: Rule<T>): Rule<T | undefined> {
  return (v, name) => (v === null || v === '' ? undefined : rule(v, name));
}

const RULES = {
  modelPath: optional(text),
  executionProvider: provider,
  backend,
  threads: optional(num(1, 256, true)),
  idleUnloadMinutes: num(0, 7 * 24 * 60),
  steps: optional(option('steps')),
  remasking: optional(remasking),
  confidenceThreshold: optional(option('threshold')),
  maxNewTokens: optional(option('maxNewTokens')),
  verifySteps: optional(verifySteps),
  hover: { enabled: bool, prompt: text, maxNewTokens: num(G.maxNewTokens.min, G.maxNewTokens.max, true) },
  altText: { prompt: text, maxChars: num(16, 1000, true), maxNewTokens: num(G.maxNewTokens.min, G.maxNewTokens.max, true) },
  server: { url: serverUrl, model: (v, name) => (v === null ? '' : typeof v === 'string' ? v.trim() : text(v, name)), allowed: bool },
} satisfies { [K in keyof ServerSettings]-?: Rule<ServerSettings[K]> | { [F in keyof ServerSettings[K]]: Rule<ServerSettings[K][F]> } };

export interface SettingsChange {
  /** The model folder, provider, backend or threads changed: the model must be reloaded. */
  model: boolean;
  /** Values that were refused (the previous value stays), each naming the setting. */
  problems: string[];
}

/**
 * The server's one settings store. Every source (start-up defaults and `serve --model`, initializationOptions,
 * `workspace/configuration` pulls, `didChangeConfiguration` pushes) is an update applied over what the store holds, so
 * a client that sends only what changed keeps everything it set before. Keys absent (or undefined) in an update keep their value;
 * unknown keys are ignored; a malformed value is refused with a message and the previous value stays.
 */
export class SettingsStore {
  private value: ServerSettings;

  /** `pinned` values win over every update (command-line overrides of the client's settings). */
  constructor(
    initial: ServerSettings = DEFAULT_SETTINGS,
    private readonly pinned?: SettingsUpdate,
  ) {
    this.value = structuredClone(initial);
    if (pinned) for (const problem of this.update(pinned).problems) throw new Error(problem);
  }

  get current(): ServerSettings {
    return this.value;
  }

  update(raw: unknown): SettingsChange {
    const problems: string[] = [];
    if (raw === undefined || raw === null) return { model: false, problems };
    if (!isObject(raw)) return { model: false, problems: [`${SETTINGS_SECTION} settings must be an object`] };
    const pinned = this.pinned;
    if (pinned && raw !== pinned) raw = Object.fromEntries(Object.entries(raw).filter(([key]) => !Object.hasOwn(pinned, key)));
    if (!isObject(raw)) return { model: false, problems };
    const prev = this.value;
    const next = structuredClone(prev) as unknown as Record<string, unknown>;
    for (const [key, rule] of Object.entries(RULES)) {
      if (raw[key] === undefined) continue;
      const name = `${SETTINGS_SECTION}.${key}`;
      if (typeof rule === 'function') {
        try {
          next[key] = (rule as Rule<unknown>)(raw[key], name);
        } catch (err) {
          problems.push((err as Error).message);
        }
        continue;
      }
      const part = raw[key];
      if (!isObject(part)) {
        problems.push(`${name} must be an object`);
        continue;
      }
      const target = next[key] as Record<string, unknown>;
      for (const [field, fieldRule] of Object.entries(rule)) {
        if (part[field] === undefined) continue;
        try {
          target[field] = (fieldRule as Rule<unknown>)(part[field], `${name}.${field}`);
        } catch (err) {
          problems.push((err as Error).message);
        }
      }
    }
    this.value = next as unknown as ServerSettings;
    for (const key of Object.keys(this.value) as (keyof ServerSettings)[]) if (this.value[key] === undefined) delete this.value[key];
    return { model: modelSettingsChanged(prev, this.value), problems };
  }
}

/** True when the change needs the model reloaded. */
export function modelSettingsChanged(a: ServerSettings, b: ServerSettings): boolean {
  return a.modelPath !== b.modelPath || a.executionProvider !== b.executionProvider || a.backend !== b.backend || a.threads !== b.threads;
}

/** The generation defaults the settings hold, as request options (setting names → the engine's option names). */
export function generationDefaults(s: ServerSettings): GenerationOptions {
  const o: GenerationOptions = { steps: s.steps, strategy: s.remasking, threshold: s.confidenceThreshold, maxNewTokens: s.maxNewTokens, verifySteps: s.verifySteps };
  for (const key of Object.keys(o) as (keyof GenerationOptions)[]) if (o[key] === undefined) delete o[key];
  return o;
}
