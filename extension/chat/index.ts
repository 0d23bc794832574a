import * as vscode from 'vscode';
import type { Sidecar } from '../client';
import { registerAskImageTool } from './askImageTool';
import { AttachedImages } from './attachments';
import { chatHandler, registerChatParticipant } from './participant';

export interface ChatIntegration extends vscode.Disposable {
  /** The `@diffusionvl` request handler (also where no chat view exists to send it requests). */
  readonly handler: vscode.ChatRequestHandler;
}

/** The chat integrations, each registered only where this VS Code has its API. */
export function registerChat(ctx: vscode.ExtensionContext, sidecar: Sidecar): ChatIntegration {
  const attached = new AttachedImages();
  const handler = chatHandler(sidecar, attached);
  const parts: vscode.Disposable[] = [];
  if (typeof vscode.lm?.registerTool === 'function') parts.push(registerAskImageTool(sidecar, attached));
  if (typeof vscode.chat?.createChatParticipant === 'function') parts.push(registerChatParticipant(ctx, handler));
  const all = vscode.Disposable.from(...parts);
  return { handler, dispose: () => all.dispose() };
}
