import * as vscode from 'vscode';
import type { Sidecar } from './client';
import { type PickedImage, toImageSource } from './images';
import { generationOptions } from './settings';

/** Prompts for generated text that goes into documents: short, so it fits alt text and comments. */
export const ALT_TEXT_PROMPT = 'Write a short alt text for this image.';
export const DESCRIBE_PROMPT = 'Describe this image in one or two sentences.';

/** Generates a description, showing progress (and the text as it forms) in a cancellable notification. */
export async function describeWithProgress(
  sidecar: Sidecar,
  image: PickedImage,
  prompt: string,
  token?: vscode.CancellationToken,
): Promise<string | undefined> {
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Describing ${image.label}`, cancellable: true },
    async (progress, progressToken) => {
      const cts = new vscode.CancellationTokenSource();
      const subs = [progressToken.onCancellationRequested(() => cts.cancel()), token?.onCancellationRequested(() => cts.cancel())];
      try {
        const res = await sidecar.ask(
          { image: toImageSource(image), question: prompt, options: generationOptions({ maxNewTokens: Math.min(64, generationOptions().maxNewTokens ?? 64) }) },
          (p) => {
            if (p.kind === 'block') progress.report({ message: p.text.length > 80 ? `…${p.text.slice(-80)}` : p.text });
          },
          cts.token,
        );
        return res.text.trim();
      } finally {
        subs.forEach((s) => s?.dispose());
        cts.dispose();
      }
    },
  );
}
