import type { Engine, EngineOptions, GenerationResult, GenerationStats, ImageInput, RunControls, RunOptions } from '../engine/api';
import { isModelDir } from '../engine/defaultModel';
import { DiffusionVLError, errorKind } from '../engine/errors';
import { MANIFEST_FILE } from '../engine/manifest';
import type { DecodingStatus, ModelState, ServerSettings, StatusResult } from '../protocol';
import type { ChatAnswer } from '../remote/chatClient';
import { RemoteSource } from '../remote/remoteSource';
import { message } from './errors';
import { modelSettingsChanged } from './settings';

export type EngineFactory = (opts: EngineOptions) => Promise<Engine>;

/** One question about its images (in prompt order), for whichever source answers. */
export interface SourceRequest {
  images: ImageInput[];
  question: string;
  options: RunOptions;
}

/** What answered and how: the local engine's full result, or a remote server's answer. */
export type SourceAnswer = { source: 'local'; result: GenerationResult; model: string } | { source: 'remote'; answer: ChatAnswer; server: string };

const NO_MODEL = 'no model configured: set diffusionvl.modelPath to a converted model folder, or run diffusionvl/prepareModel to download one';

/** How long a failed load is remembered, so a request storm against a broken model fails fast instead of reloading. */
const LOAD_FAILURE_TTL_MS = 3000;

/**
 * Owns the engine: loads it on first use (once: provider fallback is the engine's own, and its reason is what status
 * reports), unloads it after the idle timeout, reloads when model settings change, and replaces an engine whose
 * worker failed. Callers go through `use`, which keeps the engine from being unloaded under a running request.
 * Without a `modelPath` setting the embedded default model is used, when there is one. While `server.url` is set, a
 * remote server answers instead (and the local engine is unloaded): {@link ModelManager.ask} is the one way every
 * feature gets an answer, whichever source gives it.
 */
export class ModelManager {
  private engine?: Engine;
  private loading?: Promise<Engine>;
  private leases = 0;
  private decoding?: DecodingStatus;
  private idleTimer?: NodeJS.Timeout;
  private state: ModelState = 'unloaded';
  private lastError?: { message: string; at: number; dir?: string };
  /** Settings changed while a request held the engine: dispose once it is released. */
  private stale = false;
  /** Bumped on every model-relevant settings change; a load that finishes under an older generation is discarded. */
  private generation = 0;
  private remoteSource?: RemoteSource;

  constructor(
    private readonly factory: EngineFactory,
    private settings: ServerSettings,
    private readonly onChange: () => void,
    private readonly log: (msg: string, level?: 'info' | 'warning' | 'error') => void,
    /** The embedded default model's folder, used when `modelPath` is not set. */
    private readonly defaultModelDir?: string,
    /** The remote server's API key (from the environment, never from settings traffic). */
    private readonly remoteApiKey?: string,
  ) {
    this.remoteSource = this.makeRemote(settings);
  }

  /** Names what answers (cache keys): the remote server and model, else the local model folder. */
  answererId(): string {
    const r = this.remoteSource;
    return r ? `${r.url}\0${this.settings.server.model}` : (this.modelDir() ?? '');
  }

  /**
   * Answers one question with whatever answers now: the remote server when one is set, else the local engine
   * (loaded on first use). Block events reach `controls.onEvent` from both; step events only from the local engine.
   */
  async ask(req: SourceRequest, controls: RunControls & { signal: AbortSignal }): Promise<{ value: SourceAnswer; loadMs: number }> {
    const remote = this.remoteSource;
    if (remote) {
      let block = 0;
      const answer = await remote.ask(req, controls.signal, (text) => controls.onEvent?.({ kind: 'block', block: block++, ids: [], text }));
      return { value: { source: 'remote', answer, server: remote.url }, loadMs: 0 };
    }
    const model = this.modelDir() ?? '';
    const { value, loadMs } = await this.use((engine) => engine.ask({ images: req.images, question: req.question, options: req.options }, controls));
    return { value: { source: 'local', result: value, model }, loadMs };
  }

  private makeRemote(s: ServerSettings): RemoteSource | undefined {
    if (!s.server.url) return undefined;
    return new RemoteSource({ url: s.server.url, model: s.server.model, allowed: s.server.allowed, apiKey: this.remoteApiKey }, () => this.changed(), this.log);
  }

  /** The model folder in use and where it came from: the setting, else the embedded default model (if present). */
  model(): { dir?: string; source?: 'setting' | 'default' } {
    if (this.settings.modelPath) return { dir: this.settings.modelPath, source: 'setting' };
    if (this.defaultModelDir && isModelDir(this.defaultModelDir)) return { dir: this.defaultModelDir, source: 'default' };
    return {};
  }

  modelDir(): string | undefined {
    return this.model().dir;
  }

  async use<T>(fn: (engine: Engine) => Promise<T>): Promise<{ value: T; loadMs: number }> {
    const t0 = performance.now();
    const engine = await this.acquire();
    const loadMs = performance.now() - t0;
    this.leases++;
    this.clearIdle();
    try {
      return { value: await fn(engine), loadMs };
    } catch (err) {
      if (!isExpected(err)) {
        // Anything but bad input or cancellation may mean the worker is gone; start fresh next time.
        this.log(`engine failed (${message(err)}); it will be reloaded on the next request`, 'error');
        this.stale = true;
      }
      throw err;
    } finally {
      this.leases--;
      this.afterRelease();
    }
  }

  /** New settings: unload (and reload if it was loaded) when the model folder, provider or threads changed. */
  configure(next: ServerSettings): void {
    const prev = this.settings;
    this.settings = next;
    this.lastError = undefined;
    if (JSON.stringify(prev.server) !== JSON.stringify(next.server)) {
      this.remoteSource = this.makeRemote(next);
      if (this.remoteSource) this.log(`answers now come from ${next.server.url}${this.remoteSource.allowed ? '' : ' (once you allow sending images there)'}`);
      else if (prev.server.url) this.log('answers now come from the local model');
      // The local model is not needed while a remote server answers: free its memory.
      if (this.remoteSource) void this.unload();
      this.changed();
    }
    if (!modelSettingsChanged(prev, next)) {
      this.armIdle();
      return;
    }
    const wasLoaded = this.engine !== undefined || this.loading !== undefined;
    this.generation++;
    this.stale = true;
    if (this.leases === 0) void this.dropStale().then(() => (wasLoaded && this.modelDir() && !this.remoteSource ? this.preload() : undefined));
    this.changed();
  }

  /** Loads in the background (errors are reported through status). */
  async preload(): Promise<void> {
    try {
      await this.acquire();
      this.afterRelease();
    } catch {
      // Already recorded in lastError and status.
    }
  }

  async unload(): Promise<void> {
    this.clearIdle();
    if (this.leases > 0) {
      this.stale = true;
      return;
    }
    await this.dropStale(true);
  }

  async dispose(): Promise<void> {
    this.clearIdle();
    const e = this.engine ?? (await this.loading?.catch(() => undefined));
    this.engine = undefined;
    this.loading = undefined;
    await e?.dispose().catch(() => {});
  }

  /** The last answer's decoding, for the status (verified multi-step decoding's K and yield). */
  noteDecoding(s: GenerationStats): void {
    const f = s.forwards;
    this.decoding = { verifySteps: s.verify.k, reason: s.verify.reason, tokensPerForward: s.tokensPerForward, draftsVerified: f.draftsVerified ?? 0, draftsAccepted: f.draftsAccepted ?? 0 };
  }

  status(): Pick<StatusResult, 'model' | 'provider' | 'backend' | 'remote' | 'decoding'> {
    const info = this.engine?.info;
    const { dir, source } = this.model();
    return {
      remote: this.remoteSource?.status(),
      model: {
        state: dir ? this.state : 'none',
        dir,
        source,
        architecture: info?.architecture,
        precision: info?.precision,
        error: this.state === 'error' ? this.lastError?.message : !dir ? NO_MODEL : undefined,
        idleUnloadMinutes: this.settings.idleUnloadMinutes,
      },
      provider: {
        requested: this.settings.executionProvider,
        inUse: info?.provider,
        reason: info?.providerReason,
      },
      decoding: this.decoding,
      backend: {
        requested: this.settings.backend,
        inUse: info?.backend,
        reason: info?.backendReason,
      },
    };
  }

  private async acquire(): Promise<Engine> {
    if (this.stale && this.leases === 0) await this.dropStale();
    if (this.engine) return this.engine;
    if (!this.loading) {
      this.loading = this.load().finally(() => {
        this.loading = undefined;
      });
    }
    return this.loading;
  }

  private async load(): Promise<Engine> {
    const dir = this.modelDir();
    if (!dir) throw new DiffusionVLError('model', NO_MODEL);
    const recent = this.lastError;
    if (recent && recent.dir === dir && Date.now() - recent.at < LOAD_FAILURE_TTL_MS) throw new DiffusionVLError('model', recent.message);
    if (!isModelDir(dir)) return this.fail(dir, `${dir}: not a converted model folder (no ${MANIFEST_FILE}); set diffusionvl.modelPath to one, or run diffusionvl/prepareModel or \`diffusionvl convert\``);

    const gen = this.generation;
    this.state = 'loading';
    this.changed();
    let engine: Engine;
    try {
      // One load: the engine tries the requested provider and falls back to cpu itself, saying why in its info.
      engine = await this.factory({ modelDir: dir, provider: this.settings.executionProvider, backend: this.settings.backend, threads: this.settings.threads });
    } catch (err) {
      return this.fail(dir, `cannot load the model from ${dir}: ${message(err)}`);
    }
    if (gen !== this.generation) {
      // Settings changed while loading; this engine is already out of date.
      await engine.dispose().catch(() => {});
      return this.load();
    }
    this.engine = engine;
    this.state = 'ready';
    this.lastError = undefined;
    this.log(`model loaded from ${dir} (${engine.info.precision}, ${engine.info.provider}: ${engine.info.providerReason}; decoder on ${engine.info.backend}: ${engine.info.backendReason})`);
    this.changed();
    return engine;
  }

  private fail(dir: string, msg: string): never {
    this.state = 'error';
    this.lastError = { message: msg, at: Date.now(), dir };
    this.log(msg, 'error');
    this.changed();
    throw new DiffusionVLError('model', msg);
  }

  private async dropStale(force = false): Promise<void> {
    if (!this.stale && !force) return;
    this.stale = false;
    const e = this.engine;
    this.engine = undefined;
    if (this.state !== 'error') this.state = 'unloaded';
    if (e) {
      this.log('model unloaded');
      await e.dispose().catch((err: unknown) => this.log(`dispose failed: ${message(err)}`, 'warning'));
    }
    this.changed();
  }

  private afterRelease(): void {
    if (this.leases > 0) return;
    if (this.stale) void this.dropStale();
    else this.armIdle();
  }

  private armIdle(): void {
    this.clearIdle();
    const minutes = this.settings.idleUnloadMinutes;
    if (!this.engine || minutes <= 0 || this.leases > 0) return;
    this.idleTimer = setTimeout(() => void this.unload(), minutes * 60_000);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private changed(): void {
    this.onChange();
  }
}

/** Bad input, cancellation and the like leave the engine healthy; anything raised without a kind may mean the worker is gone. */
function isExpected(err: unknown): boolean {
  return errorKind(err) !== undefined;
}
