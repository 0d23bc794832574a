import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { Sidecar } from './client';
import { mimeOf, type PickedImage } from './images';
import { AnswerPanel } from './panel/answerPanel';

const WALKTHROUGH = 'diffusionvl.diffusionvl-vscode#gettingStarted';
const SHOWN_KEY = 'diffusionvl.walkthroughShown';

export function openWalkthrough(): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openWalkthrough', WALKTHROUGH, false);
}

/** media/examples/examples.json: the shipped diagrams with questions the demo model was trained to answer. */
interface Example {
  file: string;
  kind: string;
  qas: { question: string; answer: string }[];
}

/**
 * Try an Example: a shipped diagram and a question the demo model knows, answered in the panel. Works with no
 * setup at all, so a new user sees an answer forming within seconds of installing.
 */
async function tryExample(ctx: vscode.ExtensionContext, sidecar: Sidecar, ask: (p: AnswerPanel, q: string) => void): Promise<void> {
  const dir = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'examples');
  const examples = JSON.parse(await fs.promises.readFile(vscode.Uri.joinPath(dir, 'examples.json').fsPath, 'utf8')) as Example[];
  const items = examples.flatMap((e) => e.qas.slice(0, 2).map((qa) => ({ label: qa.question, description: `${e.file} (${e.kind})`, example: e })));
  // ignoreFocusOut: run from the walkthrough, whose page re-renders (and takes the focus) as the step completes.
  const pick = await vscode.window.showQuickPick(items, { title: 'Try an Example', placeHolder: 'A shipped diagram and a question the demo model knows', ignoreFocusOut: true });
  if (!pick) return;
  const uri = vscode.Uri.joinPath(dir, pick.example.file);
  const image: PickedImage = { uri, label: `example ${pick.example.file}`, bytes: await vscode.workspace.fs.readFile(uri), mime: mimeOf(pick.example.file) };
  ask(AnswerPanel.show(ctx, sidecar, image, ask), pick.label);
}

/** First run: open the walkthrough once (it explains the demo model and how to get a real one). */
export function registerWalkthrough(ctx: vscode.ExtensionContext, sidecar: Sidecar, ask: (p: AnswerPanel, q: string) => void): vscode.Disposable {
  const sub = sidecar.onDidChangeStatus(() => {
    if (ctx.globalState.get<boolean>(SHOWN_KEY)) return;
    void ctx.globalState.update(SHOWN_KEY, true);
    void openWalkthrough();
  });
  return vscode.Disposable.from(
    sub,
    vscode.commands.registerCommand('diffusionvl.getStarted', openWalkthrough),
    vscode.commands.registerCommand('diffusionvl.tryExample', () => tryExample(ctx, sidecar, ask)),
  );
}
