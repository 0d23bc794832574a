import * as vscode from 'vscode';
import type { Sidecar } from '../client';
import { registerAskImageTool } from './askImageTool';
import { AttachedImages } from './attachments';
import { registerChatParticipant } from './participant';

/** The chat integrations, each only where this VS Code has its API (code-server and older hosts may lack them). */
export function registerChat(ctx: vscode.ExtensionContext, sidecar: Sidecar): vscode.Disposable {
  const attached = new AttachedImages();
  const parts: vscode.Disposable[] = [];
  if (typeof vscode.lm?.registerTool === 'function') parts.push(registerAskImageTool(sidecar, attached));
  if (typeof vscode.chat?.createChatParticipant === 'function') parts.push(registerChatParticipant(ctx, sidecar, attached));
  return vscode.Disposable.from(...parts);
}
