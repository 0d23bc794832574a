import type { Connection, TextDocuments } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { DownloadStatus, ServerSettings, SettingsUpdate } from '../protocol';
import type { Describer } from './describe';
import type { ModelManager } from './modelLifecycle';
import type { WorkspaceGuard } from './pathGuard';
import type { InferenceQueue } from './queue';

/** What every feature handler shares. */
export interface ServerContext {
  connection: Connection;
  documents: TextDocuments<TextDocument>;
  guard: WorkspaceGuard;
  /** The current settings (read-only: change them through updateSettings, the store's one way in). */
  readonly settings: ServerSettings;
  /** Applies a partial settings update over the current settings and reconfigures the model. */
  updateSettings(update: SettingsUpdate, source: string): void;
  models: ModelManager;
  queue: InferenceQueue;
  describer: Describer;
  download?: DownloadStatus;
  client: { resolveCodeActionEdit: boolean; documentChanges: boolean; workDoneProgress: boolean };
  /** Coalesced `diffusionvl/statusChanged`. */
  statusChanged(): void;
  log(msg: string, level?: 'info' | 'warning' | 'error'): void;
}
