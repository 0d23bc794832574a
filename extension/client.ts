import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  ResponseError,
  State,
  TransportKind,
  WorkDoneProgress,
  type ErrorHandler,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import {
  ErrorCodes,
  Methods,
  PROTOCOL_VERSION,
  SERVER_API_KEY_ENV,
  SETTINGS_SECTION,
  type AskParams,
  type AskPartial,
  type AskResult,
  type InitializationOptions,
  type Notifications,
  type ParamsOf,
  type RequestMethod,
  type ResultOf,
  type ProgressToken,
  type StatusResult,
} from '../server/protocol';
import { labelDemoHover, noteDemoInsert } from './demo';
import { ensureServerAllowed, serverApiKey } from './remote';
import { hoverEnabled, isDemoModel, serverConsent, serverSettings, serverUrl } from './settings';

/** Languages whose image references get hovers and alt-text fixes from the server. */
const DOCUMENT_LANGUAGES = [
  'markdown', 'html', 'javascript', 'typescript', 'javascriptreact', 'typescriptreact', 'vue', 'svelte', 'css', 'scss', 'less',
  'python', 'java', 'c', 'cpp', 'csharp', 'go', 'rust', 'ruby', 'php', 'swift', 'kotlin', 'dart', 'shellscript',
  'yaml', 'json', 'jsonc', 'latex', 'restructuredtext', 'plaintext',
];

/** Restarts allowed within {@link RESTART_WINDOW_MS} before giving up (a server that crashes on start would loop). */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 3 * 60_000;

export type SidecarState = 'starting' | 'running' | 'restarting' | 'stopped';

/** An error the user should read: the server's message for protocol errors, a plain sentence for transport ones. */
export class SidecarError extends Error {
  constructor(message: string, readonly code?: number, readonly cancelled = false) {
    super(message);
    this.name = 'SidecarError';
  }
}

/**
 * Owns the language client: starts the sidecar (dist/server.js), restarts it after a crash, and turns the
 * errors of requests that were in flight when it died into one readable failure instead of a hang.
 */
export class Sidecar implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private readonly streams = new Map<ProgressToken, (p: AskPartial) => void>();
  private readonly restarts: number[] = [];
  private nextToken = 1;
  private disposed = false;
  /** 'starting' from construction: activation starts the sidecar at once, and the status bar's first frame says so. */
  private _state: SidecarState = 'starting';
  private _status: StatusResult | undefined;
  private inFlight = 0;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  /** Restarts run one after another (a new server URL and a new key can ask for one at the same moment). */
  private restarting: Promise<void> = Promise.resolve();

  private readonly stateEmitter = new vscode.EventEmitter<SidecarState>();
  private readonly statusEmitter = new vscode.EventEmitter<StatusResult>();
  private readonly busyEmitter = new vscode.EventEmitter<number>();
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidChangeStatus = this.statusEmitter.event;
  /** Fires with the number of user requests in flight. */
  readonly onDidChangeBusy = this.busyEmitter.event;

  constructor(
    readonly ctx: vscode.ExtensionContext,
    readonly log: vscode.LogOutputChannel,
  ) {}

  get state(): SidecarState {
    return this._state;
  }
  get status(): StatusResult | undefined {
    return this._status;
  }
  get busy(): number {
    return this.inFlight;
  }

  /** Starts the server once: concurrent callers share one start (it reads the key first, so it is not instant). */
  start(): Promise<void> {
    this.starting ??= this.startOnce().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    // A server being stopped still holds its registrations (commands, providers): start after it is gone.
    await this.stopping;
    if (this.client) return;
    const serverModule = this.ctx.asAbsolutePath('dist/server.js');
    // The shared server's key travels in the sidecar's environment: never in settings traffic (which the trace
    // setting can log), never on disk. A new key or URL restarts the sidecar.
    const key = await serverApiKey(this.ctx, serverUrl());
    const env = key ? { ...process.env, [SERVER_API_KEY_ENV]: key } : undefined;
    const serverOptions: ServerOptions = {
      run: { module: serverModule, transport: TransportKind.ipc, options: { env } },
      debug: { module: serverModule, transport: TransportKind.ipc, options: { env, execArgv: ['--nolazy', '--inspect=6019'] } },
    };
    const initializationOptions: InitializationOptions = { settings: serverSettings(this.ctx) };
    const clientOptions: LanguageClientOptions = {
      documentSelector: DOCUMENT_LANGUAGES.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
      ]),
      outputChannel: this.log,
      initializationOptions,
      errorHandler: this.errorHandler(() => client),
      middleware: {
        // The server also honours hover.enabled; checking here avoids a round trip and covers Restricted Mode at once.
        provideHover: async (document, position, token, next) => {
          if (!hoverEnabled(this.ctx)) return undefined;
          // A hover never opens the consent dialog (it appears without being asked for); nothing is sent before it.
          const url = serverUrl();
          if (url && serverConsent(this.ctx, url) !== true) return undefined;
          const hover = await next(document, position, token);
          return hover && isDemoModel(this.ctx) ? labelDemoHover(hover) : hover;
        },
        provideCodeActions: (document, range, context, token, next) => (vscode.workspace.isTrusted ? next(document, range, context, token) : []),
        resolveCodeAction: async (item, token, next) => {
          await ensureServerAllowed(this.ctx, this);
          const resolved = await next(item, token);
          if (resolved?.edit && isDemoModel(this.ctx)) noteDemoInsert(/alt/i.test(item.title) ? 'alt text' : 'description');
          return resolved;
        },
        workspace: {
          // The library would push the raw VS Code keys; the server wants ServerSettings, so push those instead.
          didChangeConfiguration: async () => this.sendSettings(),
          // Answer the server's pull for our section with the mapped settings, not the raw VS Code keys.
          configuration: (params, token, next) =>
            params.items.some((i) => i.section === SETTINGS_SECTION)
              ? params.items.map((i) => (i.section === SETTINGS_SECTION ? serverSettings(this.ctx) : null))
              : next(params, token),
        },
      },
    };
    const client = new LanguageClient('diffusionvl', 'DiffusionVL', serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) {
        this.setState('running');
        void this.refreshStatus();
      } else if (e.newState === State.Starting) {
        this.setState(this._state === 'running' ? 'restarting' : 'starting');
      } else if (!this.disposed && this._state !== 'restarting') {
        this.setState('stopped');
      }
    });
    client.onNotification(Methods.partialAnswer, (p: Notifications[typeof Methods.partialAnswer]) => this.streams.get(p.token)?.(p));
    client.onNotification(Methods.statusChanged, (s: Notifications[typeof Methods.statusChanged]) => this.setStatus(s));
    this.setState('starting');
    try {
      await client.start();
    } catch (err) {
      this.log.error(`DiffusionVL server failed to start: ${errorText(err)}`);
      this.setState('stopped');
      throw new SidecarError(`The DiffusionVL server failed to start: ${errorText(err)}`);
    }
  }

  /** `owner` is the client this handler belongs to: one that was replaced (restart) is not restarted when it closes. */
  private errorHandler(owner: () => LanguageClient | undefined): ErrorHandler {
    return {
      error: (_error, _message, count) => ({ action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
      closed: () => {
        if (this.disposed || owner() !== this.client) return { action: CloseAction.DoNotRestart, handled: true };
        const now = Date.now();
        this.restarts.push(now);
        while (this.restarts.length && now - this.restarts[0] > RESTART_WINDOW_MS) this.restarts.shift();
        // Everything in flight died with the process; its streams will never finish.
        this.streams.clear();
        if (this.restarts.length > MAX_RESTARTS) {
          this.setState('stopped');
          return {
            action: CloseAction.DoNotRestart,
            message: `The DiffusionVL server stopped ${this.restarts.length} times in 3 minutes and will not be restarted. See the "DiffusionVL" output, then run "DiffusionVL: Restart Server".`,
          };
        }
        this.log.warn('DiffusionVL server stopped unexpectedly; restarting it.');
        this.setState('restarting');
        return { action: CloseAction.Restart, handled: true };
      },
    };
  }

  /** Stops the server (if running) and starts a fresh one. */
  restart(): Promise<void> {
    const next = this.restarting.then(() => this.restartOnce());
    this.restarting = next.catch(() => undefined);
    return next;
  }

  private async restartOnce(): Promise<void> {
    this.restarts.length = 0;
    const old = this.client;
    this.client = undefined;
    this.streams.clear();
    if (old) {
      this.setState('restarting');
      this.stopping = old.dispose(2000).catch((err: unknown) => this.log.warn(`stopping server: ${errorText(err)}`));
      await this.stopping;
      this.stopping = undefined;
    }
    await this.start();
  }

  /** Sends a request, starting the server if needed; failures come back as {@link SidecarError}. */
  async request<M extends RequestMethod>(method: M, params: ParamsOf<M>, token?: vscode.CancellationToken): Promise<ResultOf<M>> {
    if (!this.client || this.client.state === State.Stopped) {
      if (this.client) this.client = undefined;
      await this.start();
    }
    const client = this.client;
    if (!client) throw new SidecarError('The DiffusionVL server is not running.');
    try {
      return token ? await client.sendRequest<ResultOf<M>>(method, params, token) : await client.sendRequest<ResultOf<M>>(method, params);
    } catch (err) {
      throw toSidecarError(err);
    }
  }

  /** Asks about an image, streaming committed text to `onPartial`. Counts as busy for the status bar. */
  async ask(params: Omit<AskParams, 'streamToken'>, onPartial: (p: AskPartial) => void, token?: vscode.CancellationToken): Promise<AskResult> {
    await ensureServerAllowed(this.ctx, this);
    const streamToken = this.newToken('ask');
    this.streams.set(streamToken, onPartial);
    this.setBusy(+1);
    try {
      return await this.request(Methods.ask, { ...params, streamToken } satisfies AskParams, token);
    } finally {
      this.streams.delete(streamToken);
      this.setBusy(-1);
    }
  }

  /** Listens to LSP work-done progress for a token the client chose (e.g. prepareModel's workDoneToken). */
  async onWorkDoneProgress(token: ProgressToken, handler: (v: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => void): Promise<vscode.Disposable> {
    if (!this.client) await this.start();
    return this.client!.onProgress(WorkDoneProgress.type, token, handler);
  }

  newToken(prefix: string): string {
    return `${prefix}-${process.pid}-${this.nextToken++}`;
  }

  async refreshStatus(): Promise<StatusResult | undefined> {
    try {
      const s = await this.request(Methods.status, null);
      this.setStatus(s);
      return s;
    } catch (err) {
      this.log.warn(`status: ${errorText(err)}`);
      return undefined;
    }
  }

  /** Pushes changed settings (the server merges them over its defaults); resolves once they are sent, so that a
   * request sent after it is handled under them. */
  async sendSettings(): Promise<void> {
    if (this.client?.state !== State.Running) return;
    await this.client.sendNotification('workspace/didChangeConfiguration', { settings: { [SETTINGS_SECTION]: serverSettings(this.ctx) } });
    void this.refreshStatus();
  }

  /** Runs work that shows as busy in the status bar (downloads, describe-and-insert). */
  async busyWhile<T>(work: () => Promise<T>): Promise<T> {
    this.setBusy(+1);
    try {
      return await work();
    } finally {
      this.setBusy(-1);
    }
  }

  private setBusy(delta: number): void {
    this.inFlight = Math.max(0, this.inFlight + delta);
    void vscode.commands.executeCommand('setContext', 'diffusionvl.busy', this.inFlight > 0);
    this.busyEmitter.fire(this.inFlight);
  }

  private setState(s: SidecarState): void {
    if (this._state === s) return;
    this._state = s;
    this.stateEmitter.fire(s);
  }

  private setStatus(s: StatusResult): void {
    if (s.protocolVersion !== PROTOCOL_VERSION) this.log.warn(`server speaks protocol ${s.protocolVersion}, client ${PROTOCOL_VERSION}`);
    this._status = s;
    void vscode.commands.executeCommand('setContext', 'diffusionvl.modelPresent', s.model.state !== 'none');
    // The walkthrough's "real model" step completes on this: a downloaded or chosen model, not the shipped demo.
    void vscode.commands.executeCommand('setContext', 'diffusionvl.realModelPresent', (s.model.state !== 'none' || !!s.remote) && !isDemoModel(this.ctx));
    this.statusEmitter.fire(s);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.streams.clear();
    const c = this.client;
    this.client = undefined;
    await c?.dispose(2000).catch(() => undefined);
    this.stateEmitter.dispose();
    this.statusEmitter.dispose();
    this.busyEmitter.dispose();
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** JSON-RPC codes the client library uses when the connection is gone (vscode-jsonrpc's ErrorCodes). */
const CONNECTION_GONE = new Set([-32097 /* PendingResponseRejected */, -32096 /* ConnectionInactive */, -32099 /* MessageWriteError */]);

function toSidecarError(err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  if (err instanceof ResponseError) {
    if (err.code === ErrorCodes.RequestCancelled) return new SidecarError('Cancelled.', err.code, true);
    if (CONNECTION_GONE.has(err.code)) {
      return new SidecarError('The DiffusionVL server stopped while working on this request. It is being restarted; please try again.', err.code);
    }
    return new SidecarError(err.message, err.code);
  }
  return new SidecarError(errorText(err));
}
