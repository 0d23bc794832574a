import type { Connection, TextDocuments } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { DownloadStatus, ServerSettings } from '../protocol';
import type { Describer } from './describe';
import type { ModelManager } from './modelLifecycle';
import type { WorkspaceGuard } from './pathGuard';
import type { InferenceQueue } from './queue';

/** What every feature handler shares. `settings` is replaced wholesale on configuration changes. */
export interface ServerContext {
  connection: Connection;
  documents: TextDocuments<TextDocument>;
  guard: WorkspaceGuard;
  settings: ServerSettings;
  models: ModelManager;
  queue: InferenceQueue;
  describer: Describer;
  download?: DownloadStatus;
  client: { resolveCodeActionEdit: boolean; documentChanges: boolean; workDoneProgress: boolean };
  /** Coalesced `diffusionvl/statusChanged`. */
  statusChanged(): void;
  log(msg: string, level?: 'info' | 'warning' | 'error'): void;
}
