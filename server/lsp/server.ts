import {
  DidChangeConfigurationNotification,
  TextDocumentSyncKind,
  TextDocuments,
  type Connection,
  type InitializeParams,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { APPLY_DESCRIPTION_COMMAND, CodeActionKinds, Methods, SERVER_INFO, SETTINGS_SECTION, type InitializationOptions, type SettingsUpdate } from '../protocol';
import { registerAsk } from './ask';
import { registerCodeActions } from './codeActions';
import type { ServerContext } from './context';
import { Describer } from './describe';
import { registerHover } from './hover';
import { notify } from './handlers';
import { ModelManager, type EngineFactory } from './modelLifecycle';
import { WorkspaceGuard, uriToPath } from './pathGuard';
import { registerPrepareModel } from './prepareModel';
import { isDidChangeParams, isDidOpenParams } from './requestParams';
import { InferenceQueue } from './queue';
import { SettingsStore } from './settings';
import { buildStatus, registerStatus, StatusNotifier } from './status';

export interface ServerOptions {
  engineFactory: EngineFactory;
  /** Start-up values that client settings override (e.g. `serve --model`). */
  settings?: SettingsUpdate;
  /** Values that override client settings (e.g. `serve --verify-steps`). */
  pinned?: SettingsUpdate;
  /** The embedded default model, used while no `modelPath` is set (`serve` passes models/default). */
  defaultModelDir?: string;
  /** API key for the `server.url` remote server (sent as a Bearer token; never logged). */
  remoteApiKey?: string;
}

/** Wires every feature onto `connection` and starts listening. Returns once the connection is listening. */
export function startServer(connection: Connection, opts: ServerOptions): void {
  const documents = new TextDocuments(TextDocument);
  const guard = new WorkspaceGuard();
  const store = new SettingsStore(undefined, opts.pinned);
  const log = (msg: string, level: 'info' | 'warning' | 'error' = 'info'): void => {
    if (level === 'error') connection.console.error(msg);
    else if (level === 'warning') connection.console.warn(msg);
    else connection.console.info(msg);
  };
  const notifier = new StatusNotifier(() => notify(connection, Methods.statusChanged, buildStatus(ctx)));
  const applySettings = (raw: unknown, source: string): void => {
    const change = store.update(raw);
    for (const p of change.problems) log(`${source}: ${p}; keeping the previous value`, 'warning');
    models.configure(store.current);
  };
  store.update(opts.settings);
  const models = new ModelManager(opts.engineFactory, store.current, () => notifier.schedule(), log, opts.defaultModelDir, opts.remoteApiKey);
  const queue = new InferenceQueue(64, () => notifier.schedule());
  const ctx: ServerContext = {
    connection,
    documents,
    guard,
    get settings() {
      return store.current;
    },
    updateSettings: (raw, source) => applySettings(raw, source),
    models,
    queue,
    describer: new Describer({ guard, models, queue, settings: () => store.current }),
    client: { resolveCodeActionEdit: false, documentChanges: false, workDoneProgress: false },
    statusChanged: () => notifier.schedule(),
    log,
  };
  let pullConfiguration = false;

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    const init = (params.initializationOptions ?? {}) as InitializationOptions;
    applySettings(init.settings, 'initializationOptions');
    const folders = params.workspaceFolders?.map((f) => uriToPath(f.uri)).filter((p): p is string => !!p) ?? [];
    const root = params.rootUri ? uriToPath(params.rootUri) : (params.rootPath ?? undefined);
    guard.setRoots(folders.length > 0 ? folders : root ? [root] : []);
    const caps = params.capabilities;
    ctx.client = {
      resolveCodeActionEdit: caps.textDocument?.codeAction?.resolveSupport?.properties.includes('edit') ?? false,
      documentChanges: caps.workspace?.workspaceEdit?.documentChanges ?? false,
      workDoneProgress: caps.window?.workDoneProgress ?? false,
    };
    pullConfiguration = caps.workspace?.configuration ?? false;
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKinds.altText, CodeActionKinds.describeComment], resolveProvider: true },
        executeCommandProvider: { commands: [APPLY_DESCRIPTION_COMMAND] },
        workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
      },
      serverInfo: { ...SERVER_INFO },
    };
  });

  const pull = async (): Promise<void> => {
    try {
      applySettings(await connection.workspace.getConfiguration(SETTINGS_SECTION), 'workspace/configuration');
    } catch (err) {
      log(`cannot read configuration: ${(err as Error).message}`, 'warning');
    }
  };

  connection.onInitialized(() => {
    if (pullConfiguration) {
      void connection.client.register(DidChangeConfigurationNotification.type, { section: SETTINGS_SECTION }).catch(() => {});
      void pull();
    }
    connection.workspace.onDidChangeWorkspaceFolders((e) => {
      const removed = new Set(e.removed.map((f) => uriToPath(f.uri)));
      const added = e.added.map((f) => uriToPath(f.uri)).filter((p): p is string => !!p);
      guard.setRoots([...guard.folders.filter((f) => !removed.has(f)), ...added]);
    });
    notifier.enable();
  });

  connection.onDidChangeConfiguration((change) => {
    const section = (change.settings as Record<string, unknown> | null | undefined)?.[SETTINGS_SECTION];
    if (section !== undefined) applySettings(section, 'didChangeConfiguration');
    else if (pullConfiguration) void pull();
  });

  registerAsk(ctx);
  registerHover(ctx);
  registerCodeActions(ctx);
  registerStatus(ctx);
  registerPrepareModel(ctx);

  connection.onShutdown(async () => {
    notifier.dispose();
    await models.dispose();
  });
  connection.onExit(() => {
    notifier.dispose();
    void models.dispose();
  });

  // The document store takes notifications as they come; a malformed one (text not a string) would sit in it and
  // break every later hover or code action on that document, so those are dropped (notifications have no reply).
  documents.listen({
    ...connection,
    onDidOpenTextDocument: (h) => connection.onDidOpenTextDocument((p) => (isDidOpenParams(p) ? h(p) : log('textDocument/didOpen: malformed params ignored', 'warning'))),
    onDidChangeTextDocument: (h) => connection.onDidChangeTextDocument((p) => (isDidChangeParams(p) ? h(p) : log('textDocument/didChange: malformed params ignored', 'warning'))),
  } as Connection);
  connection.listen();
}
