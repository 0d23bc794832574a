import * as vscode from 'vscode';
import type { Sidecar } from './client';

const WALKTHROUGH = 'diffusionvl.diffusionvl-vscode#gettingStarted';
const SHOWN_KEY = 'diffusionvl.walkthroughShown';

export function openWalkthrough(): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openWalkthrough', WALKTHROUGH, false);
}

/** First run: when the server reports no model, open the walkthrough once (never again after that). */
export function registerWalkthrough(ctx: vscode.ExtensionContext, sidecar: Sidecar): vscode.Disposable {
  const sub = sidecar.onDidChangeStatus((s) => {
    if (s.model.state !== 'none' || ctx.globalState.get<boolean>(SHOWN_KEY)) return;
    void ctx.globalState.update(SHOWN_KEY, true);
    void openWalkthrough();
  });
  return vscode.Disposable.from(sub, vscode.commands.registerCommand('diffusionvl.getStarted', openWalkthrough));
}
