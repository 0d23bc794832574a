import * as vscode from 'vscode';
import { registerChat } from './chat';
import { Sidecar } from './client';
import { followUpIn, registerAsk } from './commands/ask';
import { registerDescribeInsert } from './commands/describeInsert';
import { registerModelCommands } from './commands/model';
import { trackTextEditors } from './editors';
import { registerPasteAndDrop } from './paste';
import { registerServerKeyCommands } from './remote';
import { affectsServer, SECTION } from './settings';
import { StatusBar } from './statusBar';
import { registerWalkthrough } from './walkthrough';

/** What activate() returns: enough for tests and other extensions to see the sidecar's state. */
export interface DiffusionVLApi {
  readonly sidecar: Sidecar;
  /** The `@diffusionvl` chat request handler. */
  readonly chatHandler: vscode.ChatRequestHandler;
}

let sidecar: Sidecar | undefined;

export async function activate(ctx: vscode.ExtensionContext): Promise<DiffusionVLApi> {
  const log = vscode.window.createOutputChannel('DiffusionVL', { log: true });
  sidecar = new Sidecar(ctx, log);
  const sc = sidecar;
  const chat = registerChat(ctx, sc);
  ctx.subscriptions.push(
    log,
    { dispose: () => void sc.dispose() },
    new StatusBar(ctx, sc),
    trackTextEditors(),
    registerAsk(ctx, sc),
    chat,
    registerDescribeInsert(sc),
    registerModelCommands(ctx, sc),
    registerPasteAndDrop(sc),
    registerServerKeyCommands(ctx, sc),
    registerWalkthrough(ctx, sc, followUpIn(ctx)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      // Another server needs the sidecar restarted with that server's key (if any), which only travels at start.
      if (e.affectsConfiguration(`${SECTION}.server.url`)) sc.restart().catch((err: unknown) => log.error(String(err)));
      else if (affectsServer(e)) void sc.sendSettings();
    }),
    // Hovers and quick fixes are off in Restricted Mode; granting trust turns them on without a reload.
    vscode.workspace.onDidGrantWorkspaceTrust(() => void sc.sendSettings()),
  );
  // Start in the background: activation must not wait for the server (or fail when it cannot start).
  sc.start().catch((err: unknown) => log.error(String(err)));
  return { sidecar: sc, chatHandler: chat.handler };
}

export async function deactivate(): Promise<void> {
  await sidecar?.dispose();
  sidecar = undefined;
}
