import * as vscode from 'vscode';
import type { Sidecar } from '../client';
import { showUserError } from '../userErrors';
import { noteDemoInsert } from '../demo';
import { isDemoModel } from '../settings';
import { SidecarError } from '../client';
import { ALT_TEXT_PROMPT, DESCRIBE_PROMPT, describeWithProgress } from '../describe';
import { isImageUri, loadImage, pickImage, type PickedImage } from '../images';
import { insertDescription, insertStyleFor } from '../insert';
import { targetForImage } from '../paste';
import { targetTextEditor } from '../editors';

/**
 * Describe Image and Insert: the description goes in at the cursor as the document's language wants it.
 * The position is fixed when the command starts, so typing elsewhere meanwhile doesn't move the insertion.
 */
export function registerDescribeInsert(sidecar: Sidecar): vscode.Disposable {
  return vscode.commands.registerCommand('diffusionvl.describeImageAndInsert', async (uri?: unknown) => {
    const editor = targetTextEditor();
    if (!editor) {
      void vscode.window.showWarningMessage('Open a text editor and place the cursor where the description should go.');
      return;
    }
    const document = editor.document;
    const position = editor.selection.active;
    try {
      let image: PickedImage | undefined;
      if (uri instanceof vscode.Uri && isImageUri(uri)) image = await loadImage(uri);
      else {
        const picked = await pickImage('Describe Image and Insert');
        if (picked === 'clipboard') {
          void vscode.window.showInformationMessage('To describe an image from the clipboard, paste it into a Markdown file and choose "Insert image with generated description", or use Ask About Image.');
          return;
        }
        image = picked;
      }
      if (!image) return;
      const markdown = insertStyleFor(document.languageId) === 'markdown';
      const text = await describeWithProgress(sidecar, image, markdown ? ALT_TEXT_PROMPT : DESCRIBE_PROMPT);
      if (text === undefined) return;
      if (!text) {
        void vscode.window.showWarningMessage(`DiffusionVL: the model gave no description for ${image.label}, so nothing was inserted. Try Ask About Image with a question${isDemoModel(sidecar.ctx) ? ', or a real model (the demo model only knows synthetic diagrams)' : ''}.`);
        return;
      }
      let imageUri = image.uri;
      if (markdown && (!imageUri || imageUri.scheme !== document.uri.scheme)) {
        // Pasted or outside this file system: keep a copy next to the document so the link works.
        imageUri = await targetForImage(document.uri, image.label, image.mime);
        await vscode.workspace.fs.writeFile(imageUri, image.bytes);
      }
      const target = vscode.window.visibleTextEditors.find((e) => e.document === document) ?? (await vscode.window.showTextDocument(document, editor.viewColumn));
      await insertDescription(target, position, text, imageUri);
      if (text && isDemoModel(sidecar.ctx)) noteDemoInsert(markdown ? 'alt text' : 'description');
    } catch (err) {
      if (err instanceof SidecarError && err.cancelled) return;
      void showUserError(sidecar.log, 'describe and insert', err);
    }
  });
}
