import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Sidecar } from '../client';
import { isImageUri, loadImage, toImageSource } from '../images';
import { generationOptions, isDemoModel } from '../settings';
import type { AttachedImages } from './attachments';
import { DEMO_SUMMARY } from '../demo';

/** The tool's name, as contributed in package.json (`contributes.languageModelTools`). */
export const ASK_IMAGE_TOOL = 'diffusionvl_askImage';

export interface AskImageInput {
  /** Workspace-relative path, absolute path or file URI of the image. */
  image: string;
  question: string;
}

/** Where the tool input points: a file: URI, an absolute path, or a path relative to a workspace folder. */
function toUri(image: string): vscode.Uri {
  if (/^file:/i.test(image)) return vscode.Uri.parse(image);
  if (path.isAbsolute(image)) return vscode.Uri.file(image);
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length === 0) throw new Error(`${image}: a relative path needs an open workspace folder; give an absolute path`);
  // "folder/x.png" in a multi-root workspace may name the folder first.
  const [first, ...rest] = image.split(/[\\/]/);
  const named = folders.find((f) => f.name === first);
  return named && rest.length ? vscode.Uri.joinPath(named.uri, ...rest) : vscode.Uri.joinPath(folders[0].uri, image);
}

function labelOf(uri: vscode.Uri): string {
  return vscode.workspace.getWorkspaceFolder(uri) ? vscode.workspace.asRelativePath(uri, (vscode.workspace.workspaceFolders?.length ?? 0) > 1) : uri.fsPath;
}

/**
 * `diffusionvl_askImage`: agents ask about an image and the running sidecar answers (the model the extension
 * already has loaded, no second copy). Trusted workspaces: images inside a workspace folder, or attached to a chat
 * request. Restricted Mode: attached images only, since an agent could otherwise read any workspace file it names.
 */
export function registerAskImageTool(sidecar: Sidecar, attached: AttachedImages): vscode.Disposable {
  const check = (input: AskImageInput): vscode.Uri => {
    if (typeof input?.image !== 'string' || !input.image.trim()) throw new Error('`image` must name an image file');
    if (typeof input.question !== 'string' || !input.question.trim()) throw new Error('`question` must be a non-empty string');
    const uri = toUri(input.image.trim());
    if (!isImageUri(uri)) throw new Error(`${input.image}: not an image file (by its extension)`);
    if (attached.has(uri)) return uri;
    if (!vscode.workspace.isTrusted) {
      throw new Error(`${labelOf(uri)}: in Restricted Mode DiffusionVL reads only images attached to the chat request; attach the image, or trust the workspace`);
    }
    if (!vscode.workspace.getWorkspaceFolder(uri)) throw new Error(`${uri.fsPath}: outside the workspace folders; attach the image to the chat request instead`);
    return uri;
  };
  const tool: vscode.LanguageModelTool<AskImageInput> = {
    prepareInvocation(options) {
      let label: string;
      try {
        label = labelOf(toUri(String(options.input?.image ?? '')));
      } catch {
        label = String(options.input?.image ?? '');
      }
      return { invocationMessage: `Reading ${label} with DiffusionVL (on this machine)` };
    },
    async invoke(options, token) {
      const image = await loadImage(check(options.input));
      const res = await sidecar.ask({ image: toImageSource(image), question: options.input.question.trim(), options: generationOptions() }, () => {}, token);
      const parts = [new vscode.LanguageModelTextPart(res.text.trim())];
      // A caller must not pass the demo model's guesses off as a description of a real image.
      if (isDemoModel(sidecar.ctx)) parts.push(new vscode.LanguageModelTextPart(`\n\n(Answered by DiffusionVL's demo model. ${DEMO_SUMMARY})`));
      return new vscode.LanguageModelToolResult(parts);
    },
  };
  return vscode.lm.registerTool(ASK_IMAGE_TOOL, tool);
}
