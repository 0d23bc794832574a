import * as vscode from 'vscode';
import type { Sidecar } from './client';
import { type PickedImage, toImageSource } from './images';
import { generationOptions } from './settings';
import { DefaultPrompts } from '../server/protocol';

/** Prompts for generated text that goes into documents (shared with the server's hovers and quick fixes). */
export const ALT_TEXT_PROMPT = DefaultPrompts.altText;
export const DESCRIBE_PROMPT = DefaultPrompts.describe;

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
