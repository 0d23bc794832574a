import * as vscode from 'vscode';
import type { Sidecar } from '../client';
import { showUserError } from '../userErrors';
import { DESCRIBE_PROMPT } from '../describe';
import { isImageUri, loadImage, pickImage, type PickedImage } from '../images';
import { AnswerPanel } from '../panel/answerPanel';
import { askQuestion, rememberQuestion } from '../question';

/** Resolves the image for a command: the Explorer's URI when given, else the picker (clipboard → paste in the panel). */
async function chooseImage(ctx: vscode.ExtensionContext, sidecar: Sidecar, uri: unknown, title: string, onQuestion: (p: AnswerPanel, q: string) => void): Promise<{ image: PickedImage; panel?: AnswerPanel } | undefined> {
  if (uri instanceof vscode.Uri && isImageUri(uri)) return { image: await loadImage(uri) };
  const picked = await pickImage(title);
  if (picked !== 'clipboard') return picked ? { image: picked } : undefined;
  const panel = AnswerPanel.show(ctx, sidecar, undefined, onQuestion);
  const image = await panel.waitForPastedImage();
  return image ? { image, panel } : undefined;
}

async function run(ctx: vscode.ExtensionContext, panel: AnswerPanel, question: string): Promise<string | undefined> {
  await rememberQuestion(ctx, question);
  return panel.ask(question);
}

/** How a question typed into a panel runs: remembered for the question picker, answered in that panel. */
export function followUpIn(ctx: vscode.ExtensionContext): (p: AnswerPanel, q: string) => void {
  return (p, q) => void run(ctx, p, q);
}

/** Ask About Image…: choose an image and a question; the answer streams into the panel. */
export function registerAsk(ctx: vscode.ExtensionContext, sidecar: Sidecar): vscode.Disposable {
  const followUp = followUpIn(ctx);
  return vscode.Disposable.from(
    // Arguments (both optional): the image URI (Explorer, editor title) and the question (keybindings, tests).
    vscode.commands.registerCommand('diffusionvl.askAboutImage', async (uri?: unknown, givenQuestion?: unknown) => {
      try {
        const chosen = await chooseImage(ctx, sidecar, uri, 'Ask About Image', followUp);
        if (!chosen) return undefined;
        const question = typeof givenQuestion === 'string' && givenQuestion.trim() ? givenQuestion.trim() : await askQuestion(ctx, chosen.image.label);
        if (!question) return undefined;
        const panel = chosen.panel ?? AnswerPanel.show(ctx, sidecar, chosen.image, followUp);
        return await run(ctx, panel, question);
      } catch (err) {
        void showUserError(sidecar.log, 'ask about image', err);
        return undefined;
      }
    }),
    // Explorer "Describe Image": the description streams into the panel, from where it can be copied or inserted.
    vscode.commands.registerCommand('diffusionvl.describeImage', async (uri?: unknown) => {
      try {
        const chosen = await chooseImage(ctx, sidecar, uri, 'Describe Image', followUp);
        if (!chosen) return undefined;
        const panel = chosen.panel ?? AnswerPanel.show(ctx, sidecar, chosen.image, followUp);
        return await panel.ask(DESCRIBE_PROMPT);
      } catch (err) {
        void showUserError(sidecar.log, 'ask about image', err);
        return undefined;
      }
    }),
    vscode.commands.registerCommand('diffusionvl.cancel', () => {
      if (!AnswerPanel.cancelCurrent() && sidecar.busy === 0) void vscode.window.setStatusBarMessage('DiffusionVL: nothing to cancel', 3000);
    }),
  );
}
