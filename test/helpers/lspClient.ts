import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CancellationTokenSource,
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { repoRoot } from './paths';

/** A real LSP client over a spawned server's stdio: enough of the protocol for tests and benchmarks. */
export interface LspClient {
  conn: MessageConnection;
  proc: ChildProcess;
  /** Server → client notifications received so far, in order. */
  notifications: { method: string; params: unknown }[];
  /** Everything the server wrote to stderr. */
  stderr(): string;
  /** Edits the server asked the client to apply (workspace/applyEdit). */
  appliedEdits: unknown[];
  request<R>(method: string, params: unknown, cancel?: CancellationTokenSource): Promise<R>;
  openDocument(path: string, languageId: string, text: string): Promise<string>;
  /** Sends shutdown + exit and waits for the process to end. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Workspace folders (absolute paths); none means an unrestricted client. */
  workspaceFolders?: string[];
  settings?: Record<string, unknown>;
  /** Extra server arguments (e.g. --model). */
  args?: string[];
  /** Script to run instead of out/server/lsp/main.js (e.g. dist/cli.js with `serve`). */
  entry?: string[];
  capabilities?: Record<string, unknown>;
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
}

export const DEFAULT_CAPABILITIES = {
  textDocument: {
    hover: { contentFormat: ['markdown', 'plaintext'] },
    codeAction: { resolveSupport: { properties: ['edit'] }, codeActionLiteralSupport: { codeActionKind: { valueSet: ['quickfix', 'refactor'] } } },
  },
  workspace: { workspaceEdit: { documentChanges: true }, workspaceFolders: true },
};

export async function startLspServer(opts: StartOptions = {}): Promise<LspClient> {
  const entry = opts.entry ?? [join(repoRoot, 'out', 'server', 'lsp', 'main.js'), '--stdio'];
  const proc = spawn(process.execPath, [...entry, ...(opts.args ?? [])], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  const notifications: LspClient['notifications'] = [];
  const appliedEdits: unknown[] = [];
  conn.onNotification((method, params) => {
    notifications.push({ method, params });
  });
  conn.onRequest('workspace/applyEdit', (p: { edit: unknown }) => {
    appliedEdits.push(p.edit);
    return { applied: true };
  });
  conn.onRequest(() => null);
  conn.listen();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));

  const folders = opts.workspaceFolders ?? [];
  await conn.sendRequest('initialize', {
    processId: process.pid,
    rootUri: folders[0] ? pathToFileURL(folders[0]).href : null,
    workspaceFolders: folders.map((f, i) => ({ uri: pathToFileURL(f).href, name: `ws${i}` })),
    capabilities: opts.capabilities ?? DEFAULT_CAPABILITIES,
    initializationOptions: { settings: opts.settings ?? {} },
  });
  await conn.sendNotification('initialized', {});

  return {
    conn,
    proc,
    notifications,
    appliedEdits,
    stderr: () => err,
    request: <R>(method: string, params: unknown, cancel?: CancellationTokenSource) =>
      (cancel ? conn.sendRequest<R>(method, params, cancel.token) : conn.sendRequest<R>(method, params)) as Promise<R>,
    async openDocument(path, languageId, text) {
      const uri = pathToFileURL(path).href;
      await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId, version: 1, text } });
      return uri;
    },
    async close() {
      if (proc.exitCode === null) {
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        try {
          await Promise.race([conn.sendRequest('shutdown'), exited]);
          await conn.sendNotification('exit');
        } catch {
          proc.kill('SIGKILL');
        }
        await exited;
        clearTimeout(timer);
      }
      conn.dispose();
    },
  };
}

export { CancellationTokenSource };
