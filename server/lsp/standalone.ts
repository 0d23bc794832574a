import type { SettingsUpdate } from '../protocol';
import type { AnswerDeps } from './answer';
import { ModelManager, type EngineFactory } from './modelLifecycle';
import type { WorkspaceGuard } from './pathGuard';
import { InferenceQueue } from './queue';
import { SettingsStore } from './settings';

export interface StandaloneOptions {
  engineFactory: EngineFactory;
  /** Model folder, provider, threads (the same settings the sidecar takes). */
  settings: SettingsUpdate;
  /** Which files a request may name. */
  guard: WorkspaceGuard;
  log: (msg: string, level?: 'info' | 'warning' | 'error') => void;
  /** Waiting requests beyond which new ones are refused as `queueFull` (default: the queue's own). */
  maxWaiting?: number;
}

export interface Standalone {
  deps: AnswerDeps;
  models: ModelManager;
  queue: InferenceQueue;
  dispose(): Promise<void>;
}

/**
 * The sidecar's answering path (settings store, model lifecycle, queue) for a front end with fixed settings and no
 * LSP client: the MCP server and the HTTP server each build theirs here, so they take the same settings, load and
 * unload the model the same way and queue the same way.
 */
export function createStandalone(opts: StandaloneOptions): Standalone {
  const store = new SettingsStore();
  for (const problem of store.update(opts.settings).problems) opts.log(problem, 'warning');
  const settings = store.current;
  const models = new ModelManager(opts.engineFactory, settings, () => {}, opts.log);
  const queue = new InferenceQueue(opts.maxWaiting);
  return { deps: { guard: opts.guard, models, queue, settings }, models, queue, dispose: () => models.dispose() };
}
