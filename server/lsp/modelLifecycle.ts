import type { Engine, EngineOptions, GenerationStats } from '../engine/api';
import { isModelDir } from '../engine/defaultModel';
import { DiffusionVLError, errorKind } from '../engine/errors';
import { MANIFEST_FILE } from '../engine/manifest';
import type { DecodingStatus, ModelState, ServerSettings, StatusResult } from '../protocol';
import { message } from './errors';
import { modelSettingsChanged } from './settings';

export type EngineFactory = (opts: EngineOptions) => Promise<Engine>;

const NO_MODEL = 'no model configured: set diffusionvl.modelPath to a converted model folder, or run diffusionvl/prepareModel to download one';

/** How long a failed load is remembered, so a request storm against a broken model fails fast instead of reloading. */
const LOAD_FAILURE_TTL_MS = 3000;

/**
 * Owns the engine: loads it on first use (once: provider fallback is the engine's own, and its reason is what status
 * reports), unloads it after the idle timeout, reloads when model settings change, and replaces an engine whose
 * worker failed. Callers go through `use`, which keeps the engine from being unloaded under a running request.
 * Without a `modelPath` setting the embedded default model is used, when there is one.
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

  constructor(
    private readonly factory: EngineFactory,
    private settings: ServerSettings,
    private readonly onChange: () => void,
    private readonly log: (msg: string, level?: 'info' | 'warning' | 'error') => void,
    /** The embedded default model's folder, used when `modelPath` is not set. */
    private readonly defaultModelDir?: string,
  ) {}

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
    if (!modelSettingsChanged(prev, next)) {
      this.armIdle();
      return;
    }
    const wasLoaded = this.engine !== undefined || this.loading !== undefined;
    this.generation++;
    this.stale = true;
    if (this.leases === 0) void this.dropStale().then(() => (wasLoaded && this.modelDir() ? this.preload() : undefined));
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

  status(): Pick<StatusResult, 'model' | 'provider' | 'decoding'> {
    const info = this.engine?.info;
    const { dir, source } = this.model();
    return {
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
      engine = await this.factory({ modelDir: dir, provider: this.settings.executionProvider, threads: this.settings.threads });
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
    this.log(`model loaded from ${dir} (${engine.info.precision}, ${engine.info.provider}: ${engine.info.providerReason})`);
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
