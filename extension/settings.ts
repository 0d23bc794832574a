import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { MANIFEST_FILE, SETTINGS_SECTION, SUPPORTED_REPOS, type DecoderBackend, type ExecutionProvider, type GenerationOptions, type RemaskingStrategy, type SettingsUpdate } from '../server/protocol';
import { isLoopbackUrl, normalizeServerUrl } from '../server/protocol/remoteServer';

export const SECTION = SETTINGS_SECTION;

/** The downloadable models, by the short names the `diffusionvl.model` setting uses. */
export const MODELS = {
  '3B': { repo: SUPPORTED_REPOS[0], download: '≈ 7.5 GB download', memory: '≈ 8 GB RAM/VRAM (fp16)' },
  '7B': { repo: SUPPORTED_REPOS[1], download: '≈ 16.6 GB download', memory: '≈ 17 GB RAM/VRAM (fp16)' },
  // 8.03 B parameters (Qwen2.5-7B + SigLIP so400m minus one layer + projector) at 2 bytes each.
  '7B-SigLIP': { repo: SUPPORTED_REPOS[2], download: '≈ 16.1 GB download', memory: '≈ 17 GB RAM/VRAM (fp16)' },
} as const;
export type ModelName = keyof typeof MODELS;

/** globalState key: repo id → converted model folder, recorded after a successful download. */
const PREPARED_KEY = 'diffusionvl.preparedModels';

function cfg(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') || p.startsWith('~\\') ? path.join(os.homedir(), p.slice(1)) : p;
}

/**
 * Reads a machine-scoped setting from user/remote settings only. VS Code already ignores workspace values for
 * `machine` scope; asking inspect() keeps that true even if the scope were ever loosened.
 */
function machineSetting<T>(key: string): T | undefined {
  const i = cfg().inspect<T>(key);
  return i?.globalValue ?? i?.defaultValue;
}

export function modelName(): ModelName {
  const m = machineSetting<string>('model');
  return m !== undefined && m in MODELS ? (m as ModelName) : '3B';
}

export function preparedModels(ctx: vscode.ExtensionContext): Record<string, string> {
  return ctx.globalState.get<Record<string, string>>(PREPARED_KEY, {});
}

export async function recordPreparedModel(ctx: vscode.ExtensionContext, repo: string, modelDir: string): Promise<void> {
  await ctx.globalState.update(PREPARED_KEY, { ...preparedModels(ctx), [repo]: modelDir });
}

/** What the UI calls the model shipped inside the extension (a toy trained on synthetic diagrams). */
export const DEMO_LABEL = 'Demo model';

export interface ResolvedModel {
  dir?: string;
  /** Where the choice came from, for the status tooltip. */
  source: 'setting' | 'downloaded' | 'bundled' | 'none';
  label: string;
  /** The folder holds the demo model, whichever way it was chosen (the shipped folder, or a copy of it set as
   * modelPath): its answers carry the demo marks. */
  demo: boolean;
}

/** The manifest of the demo model shipped in the extension, read once: what identifies the demo model. */
let demoManifest: { at: string; bytes: Buffer | undefined } | undefined;
/** Last folder compared with it (status renders often): its manifest's mtime and the answer. */
let lastCompared: { dir: string; mtimeMs: number; demo: boolean } | undefined;

/** Whether `dir` holds the demo model: its manifest is the shipped demo model's, byte for byte. */
function isDemoDir(ctx: vscode.ExtensionContext, dir: string): boolean {
  const bundled = ctx.asAbsolutePath(path.join('models', 'default', MANIFEST_FILE));
  if (demoManifest?.at !== bundled) demoManifest = { at: bundled, bytes: readOrUndefined(bundled) };
  const manifest = path.join(dir, MANIFEST_FILE);
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(manifest).mtimeMs;
  } catch {
    return false;
  }
  if (lastCompared?.dir === dir && lastCompared.mtimeMs === mtimeMs) return lastCompared.demo;
  const mine = readOrUndefined(manifest);
  const demo = !!demoManifest.bytes && !!mine && demoManifest.bytes.equals(mine);
  lastCompared = { dir, mtimeMs, demo };
  return demo;
}

function readOrUndefined(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Model folder to load: the explicit path, else the downloaded model chosen by name, else one shipped in the extension. */
export function resolveModel(ctx: vscode.ExtensionContext): ResolvedModel {
  const explicit = (machineSetting<string>('modelPath') ?? '').trim();
  if (explicit) {
    const dir = path.resolve(expandHome(explicit));
    const demo = isDemoDir(ctx, dir);
    return { dir, source: 'setting', label: demo ? DEMO_LABEL : path.basename(dir), demo };
  }
  const name = modelName();
  const downloaded = preparedModels(ctx)[MODELS[name].repo];
  if (downloaded && fs.existsSync(path.join(downloaded, MANIFEST_FILE))) return { dir: downloaded, source: 'downloaded', label: `DiffusionVL ${name}`, demo: false };
  const bundled = ctx.asAbsolutePath(path.join('models', 'default'));
  if (fs.existsSync(path.join(bundled, MANIFEST_FILE))) return { dir: bundled, source: 'bundled', label: DEMO_LABEL, demo: true };
  return { source: 'none', label: 'no model', demo: false };
}

/** The shared server that answers instead of the local model (`diffusionvl.server.url`, normalised), if set. */
export function serverUrl(): string | undefined {
  const raw = (machineSetting<string>('server.url') ?? '').trim();
  return raw ? normalizeServerUrl(raw) : undefined;
}

/** Which of the server's models to ask (`diffusionvl.server.model`; empty: the first it lists). */
export function serverModel(): string {
  return (machineSetting<string>('server.model') ?? '').trim();
}

/** globalState key: server URL → whether the user allowed images to be sent there. */
const CONSENT_KEY = 'diffusionvl.serverConsent';

/** The user's answer for sending images to `url`: loopback needs none; undefined until asked. */
export function serverConsent(ctx: vscode.ExtensionContext, url: string): boolean | undefined {
  if (isLoopbackUrl(url)) return true;
  return ctx.globalState.get<Record<string, boolean>>(CONSENT_KEY, {})[url];
}

export async function recordServerConsent(ctx: vscode.ExtensionContext, url: string, allowed: boolean): Promise<void> {
  await ctx.globalState.update(CONSENT_KEY, { ...ctx.globalState.get<Record<string, boolean>>(CONSENT_KEY, {}), [url]: allowed });
}

/** package.json's default applies when unset (it is checked against the engine's DEFAULT_PROVIDER by a test). */
export function provider(): ExecutionProvider | undefined {
  return machineSetting<ExecutionProvider>('executionProvider');
}

/** package.json's default applies when unset (checked against the engine's DEFAULT_BACKEND by a test). */
export function backend(): DecoderBackend | undefined {
  return machineSetting<DecoderBackend>('backend');
}

export function downloadEndpoint(): string | undefined {
  return (machineSetting<string>('downloadEndpoint') ?? '').trim() || undefined;
}

/** Whether answers come from the demo model shipped in the extension (never while a remote server answers). */
export function isDemoModel(ctx: vscode.ExtensionContext): boolean {
  return !serverUrl() && resolveModel(ctx).demo;
}

/** Whether the user set a value for `key` anywhere (user, workspace or folder), as opposed to leaving the default. */
function explicitlySet(key: string): boolean {
  const i = cfg().inspect(key);
  return i?.globalValue !== undefined || i?.workspaceValue !== undefined || i?.workspaceFolderValue !== undefined;
}

/**
 * Hovers read workspace images on their own, so they stay off in Restricted Mode. With the demo model they are off
 * unless the user turned them on: it only understands synthetic diagrams, and a hover over every image in the user's
 * docs would mostly show it guessing.
 */
export function hoverEnabled(ctx: vscode.ExtensionContext): boolean {
  if (!vscode.workspace.isTrusted) return false;
  if (isDemoModel(ctx) && !explicitlySet('hover.enabled')) return false;
  return cfg().get<boolean>('hover.enabled', true);
}

/**
 * What the server gets in initializationOptions, `workspace/configuration` and didChangeConfiguration: the user's
 * settings under their own names. `modelPath` is the folder this extension resolved (the setting, else a downloaded
 * model, else the bundled one; empty lets the server use its embedded default).
 */
export function serverSettings(ctx: vscode.ExtensionContext): SettingsUpdate {
  return {
    modelPath: resolveModel(ctx).dir ?? '',
    executionProvider: provider(),
    backend: backend(),
    idleUnloadMinutes: cfg().get<number>('idleUnloadMinutes'),
    steps: cfg().get<number>('steps'),
    remasking: cfg().get<RemaskingStrategy>('remasking'),
    confidenceThreshold: cfg().get<number>('confidenceThreshold'),
    maxNewTokens: cfg().get<number>('maxNewTokens'),
    // `auto` or an integer as text; the server parses and checks it.
    verifySteps: cfg().get<string>('verifySteps') as SettingsUpdate['verifySteps'],
    hover: { enabled: hoverEnabled(ctx) },
    server: (() => {
      const url = serverUrl() ?? '';
      return { url, model: serverModel(), allowed: url !== '' && serverConsent(ctx, url) === true };
    })(),
  };
}

/** Generation options sent with every request the user starts; unset settings take package.json's defaults, which a
 * test checks against the engine's GENERATION_OPTIONS. */
export function generationOptions(overrides: GenerationOptions = {}): GenerationOptions {
  const c = cfg();
  return {
    steps: c.get<number>('steps'),
    strategy: c.get<RemaskingStrategy>('remasking'),
    threshold: c.get<number>('confidenceThreshold'),
    maxNewTokens: c.get<number>('maxNewTokens'),
    ...overrides,
  };
}

/** Settings whose change must reach the server. */
export function affectsServer(e: vscode.ConfigurationChangeEvent): boolean {
  return ['model', 'modelPath', 'executionProvider', 'backend', 'idleUnloadMinutes', 'steps', 'remasking', 'confidenceThreshold', 'maxNewTokens', 'verifySteps', 'hover.enabled', 'server.url', 'server.model'].some((k) =>
    e.affectsConfiguration(`${SECTION}.${k}`),
  );
}
