import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Sidecar } from './client';
import { SidecarError } from './client';
import { noteDemoInsert } from './demo';
import { isDemoModel } from './settings';
import { reportToLog, toUserError } from './userErrors';
import { ALT_TEXT_PROMPT, describeWithProgress } from './describe';
import { extensionOfMime, isImageUri, mimeOf, type PickedImage } from './images';
import { altText, markdownLink } from './insert';

/**
 * Our paste/drop option is its own kind, outside VS Code's `markdown.link…` kinds, and yields to them: a plain Ctrl+V
 * or drop keeps VS Code's own link and runs no model; ours is one click away in the paste/drop widget (or Paste As…).
 */
export const DESCRIBED_IMAGE_KIND = vscode.DocumentDropOrPasteEditKind.Empty.append('diffusionvl', 'describedImage');
const YIELD_TO = [vscode.DocumentDropOrPasteEditKind.Empty.append('markdown', 'link'), vscode.DocumentDropOrPasteEditKind.Text];
const TITLE = 'Insert image with generated description';

/**
 * Where a pasted or dropped image is saved: next to the document, named after the file (or "image"), with -1, -2 …
 * appended on clashes — what VS Code's Markdown paste does with default settings.
 */
export async function targetForImage(document: vscode.Uri, fileName: string, mime: string): Promise<vscode.Uri> {
  const dir = vscode.Uri.joinPath(document, '..');
  const ext = path.extname(fileName) || `.${extensionOfMime(mime)}`;
  const base = path.basename(fileName, path.extname(fileName)).replace(/[^\w.-]+/g, '-') || 'image';
  for (let i = 0; ; i++) {
    const candidate = vscode.Uri.joinPath(dir, `${base}${i ? `-${i}` : ''}${ext}`);
    try {
      await vscode.workspace.fs.stat(candidate);
    } catch {
      return candidate;
    }
  }
}

interface ImageData {
  name: string;
  mime: string;
  bytes: () => Promise<Uint8Array>;
  /** Already a file in the workspace (dropped from the Explorer): link to it, don't copy. */
  existing?: vscode.Uri;
}

async function imageFrom(dataTransfer: vscode.DataTransfer): Promise<ImageData | undefined> {
  for (const [mime, item] of dataTransfer) {
    const file = item.asFile();
    if (file && (mime.startsWith('image/') || isImageUri(vscode.Uri.file(file.name)))) {
      if (file.uri && file.uri.scheme !== 'untitled' && vscode.workspace.getWorkspaceFolder(file.uri)) {
        const uri = file.uri;
        return { name: file.name, mime: mimeOf(file.name), bytes: async () => vscode.workspace.fs.readFile(uri), existing: uri };
      }
      // Read now: the editor drops the clipboard's data once providers have answered, before any resolve.
      const data = await file.data();
      return { name: file.name, mime: mime.startsWith('image/') ? mime : mimeOf(file.name), bytes: async () => data };
    }
  }
  const uriList = await dataTransfer.get('text/uri-list')?.asString();
  const first = uriList?.split(/\r?\n/).find((l) => l && !l.startsWith('#'));
  if (first) {
    const uri = vscode.Uri.parse(first.trim());
    if (isImageUri(uri) && vscode.workspace.getWorkspaceFolder(uri)) {
      return { name: path.basename(uri.path), mime: mimeOf(uri.path), bytes: async () => vscode.workspace.fs.readFile(uri), existing: uri };
    }
  }
  return undefined;
}

async function describe(sidecar: Sidecar, img: PickedImage, token: vscode.CancellationToken): Promise<string> {
  try {
    const text = (await describeWithProgress(sidecar, img, ALT_TEXT_PROMPT, token)) ?? '';
    if (text && isDemoModel(sidecar.ctx)) noteDemoInsert('alt text');
    return text;
  } catch (err) {
    if (!(err instanceof SidecarError && err.cancelled)) {
      const e = toUserError(err);
      reportToLog(sidecar.log, `describe ${img.label}`, e);
      void vscode.window.showWarningMessage(`DiffusionVL: the image was inserted without a description. ${e.headline}`);
    }
    return '';
  }
}

class DescribedPasteEdit extends vscode.DocumentPasteEdit {
  constructor(readonly document: vscode.TextDocument, readonly image: ImageData) {
    super('', TITLE, DESCRIBED_IMAGE_KIND);
    this.yieldTo = YIELD_TO;
  }
}

class DescribedDropEdit extends vscode.DocumentDropEdit {
  constructor(insertText: string, readonly document: vscode.TextDocument, readonly image: ImageData, readonly target: vscode.Uri) {
    super(insertText, TITLE, DESCRIBED_IMAGE_KIND);
    this.yieldTo = YIELD_TO;
  }
}

/**
 * Paste: an extra option after VS Code's own. Nothing runs until the user picks it (or prefers it via
 * `editor.pasteAs.preferences`); resolving it saves the image and asks the model for alt text.
 */
class PasteProvider implements vscode.DocumentPasteEditProvider<DescribedPasteEdit> {
  constructor(private readonly sidecar: Sidecar) {}

  async provideDocumentPasteEdits(document: vscode.TextDocument, _ranges: readonly vscode.Range[], dataTransfer: vscode.DataTransfer): Promise<DescribedPasteEdit[] | undefined> {
    if (document.uri.scheme === 'untitled') return undefined;
    const image = await imageFrom(dataTransfer);
    return image ? [new DescribedPasteEdit(document, image)] : undefined;
  }

  async resolveDocumentPasteEdit(edit: DescribedPasteEdit, token: vscode.CancellationToken): Promise<DescribedPasteEdit> {
    const { image, document } = edit;
    const bytes = await image.bytes();
    const target = image.existing ?? (await targetForImage(document.uri, image.name, image.mime));
    const alt = await describe(this.sidecar, { uri: image.existing, label: image.name, bytes, mime: image.mime }, token);
    edit.insertText = markdownLink(alt, document.uri, target);
    if (!image.existing) {
      edit.additionalEdit = new vscode.WorkspaceEdit();
      edit.additionalEdit.createFile(target, { contents: bytes });
    }
    return edit;
  }
}

/**
 * Drop: resolve may only add the file, so the link goes in with empty alt text and the description is filled in
 * once the model has it.
 */
class DropProvider implements vscode.DocumentDropEditProvider<DescribedDropEdit> {
  constructor(private readonly sidecar: Sidecar) {}

  async provideDocumentDropEdits(document: vscode.TextDocument, _position: vscode.Position, dataTransfer: vscode.DataTransfer): Promise<DescribedDropEdit | undefined> {
    if (document.uri.scheme === 'untitled') return undefined;
    const image = await imageFrom(dataTransfer);
    if (!image) return undefined;
    const target = image.existing ?? (await targetForImage(document.uri, image.name, image.mime));
    return new DescribedDropEdit(markdownLink('', document.uri, target), document, image, target);
  }

  async resolveDocumentDropEdit(edit: DescribedDropEdit): Promise<DescribedDropEdit> {
    const bytes = await edit.image.bytes();
    if (!edit.image.existing) {
      edit.additionalEdit = new vscode.WorkspaceEdit();
      edit.additionalEdit.createFile(edit.target, { contents: bytes });
    }
    void this.fillAltText(edit, bytes);
    return edit;
  }

  private async fillAltText(edit: DescribedDropEdit, bytes: Uint8Array): Promise<void> {
    const cts = new vscode.CancellationTokenSource();
    const alt = altText(await describe(this.sidecar, { uri: edit.image.existing, label: edit.image.name, bytes, mime: edit.image.mime }, cts.token));
    cts.dispose();
    if (!alt) return;
    const empty = typeof edit.insertText === 'string' ? edit.insertText : edit.insertText.value;
    const doc = edit.document;
    const at = doc.getText().indexOf(empty);
    if (at < 0) return;
    const we = new vscode.WorkspaceEdit();
    we.insert(doc.uri, doc.positionAt(at + 2), alt);
    await vscode.workspace.applyEdit(we);
  }
}

export function registerPasteAndDrop(sidecar: Sidecar): vscode.Disposable {
  const selector: vscode.DocumentSelector = [{ language: 'markdown' }];
  return vscode.Disposable.from(
    vscode.languages.registerDocumentPasteEditProvider(selector, new PasteProvider(sidecar), {
      providedPasteEditKinds: [DESCRIBED_IMAGE_KIND],
      pasteMimeTypes: ['image/*', 'files'],
    }),
    vscode.languages.registerDocumentDropEditProvider(selector, new DropProvider(sidecar), {
      providedDropEditKinds: [DESCRIBED_IMAGE_KIND],
      dropMimeTypes: ['image/*', 'files', 'text/uri-list'],
    }),
  );
}

