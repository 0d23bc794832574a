import * as path from 'node:path';
import * as vscode from 'vscode';
import { MAX_IMAGE_BYTES, type ImageSource } from '../server/protocol';
import { hasImageExtension, IMAGE_FILE_EXTENSIONS } from '../server/protocol/imageFiles';

const IMAGE_GLOB = `**/*.{${IMAGE_FILE_EXTENSIONS.join(',')}}`;

/** An image the user chose: where it lives (if anywhere) and how to send it to the server. */
export interface PickedImage {
  /** File it came from, or undefined for pasted bytes. */
  uri?: vscode.Uri;
  label: string;
  /** Encoded file bytes (PNG, JPEG, …), read once for the panel preview and, when needed, for the server. */
  bytes: Uint8Array;
  mime: string;
}

export function isImageUri(uri: vscode.Uri): boolean {
  return hasImageExtension(uri.path);
}

export function mimeOf(name: string): string {
  const ext = path.extname(name).slice(1).toLowerCase();
  return ext === 'jpg' ? 'image/jpeg' : ext === 'tif' ? 'image/tiff' : ext === 'svg' || ext === 'svgz' ? 'image/svg+xml' : `image/${ext || 'png'}`;
}

export function extensionOfMime(mime: string): string {
  const sub = mime.split('/')[1]?.split(/[+;]/)[0] ?? 'png';
  return sub === 'jpeg' ? 'jpg' : sub;
}

export async function loadImage(uri: vscode.Uri): Promise<PickedImage> {
  const stat = await vscode.workspace.fs.stat(uri);
  if (stat.size > MAX_IMAGE_BYTES) throw new Error(`${path.basename(uri.path)} is larger than the ${MAX_IMAGE_BYTES / (1024 * 1024)} MiB image limit.`);
  const bytes = await vscode.workspace.fs.readFile(uri);
  return { uri, label: vscode.workspace.asRelativePath(uri, false), bytes, mime: mimeOf(uri.path) };
}

/**
 * What the server receives: a path for files inside a workspace folder (the server reads them itself and may
 * cache by path), the bytes for anything else (pasted, outside the workspace, or on a non-file file system).
 */
export function toImageSource(img: PickedImage): ImageSource {
  if (img.uri?.scheme === 'file' && vscode.workspace.getWorkspaceFolder(img.uri)) return { path: img.uri.fsPath };
  return { bytes: Buffer.from(img.bytes).toString('base64') };
}

/** The image shown in the active editor group, if it is one (VS Code's image preview or any tab on an image file). */
export function activeImageUri(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  const uri = input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText ? input.uri : undefined;
  return uri && isImageUri(uri) ? uri : undefined;
}

type SourceItem = vscode.QuickPickItem & { pick: () => Promise<PickedImage | 'clipboard' | undefined> };

/**
 * Lets the user choose an image: the active image editor, a workspace image, the clipboard, or a file dialog.
 * `'clipboard'` means the caller should collect pasted bytes (the extension host cannot read image clipboards).
 */
export async function pickImage(title: string): Promise<PickedImage | 'clipboard' | undefined> {
  const items: SourceItem[] = [];
  const active = activeImageUri();
  if (active) {
    items.push({ label: `$(file-media) ${path.basename(active.path)}`, description: 'active editor', pick: () => loadImage(active) });
  }
  const clipText = await Promise.resolve(vscode.env.clipboard.readText()).catch(() => '');
  const clipUri = clipboardImageUri(clipText);
  items.push({
    label: '$(clippy) From Clipboard',
    description: clipUri ? path.basename(clipUri.path) : 'paste an image',
    pick: async () => (clipUri ? loadImage(clipUri) : 'clipboard'),
  });
  items.push({
    label: '$(folder-opened) Browse…',
    description: 'choose an image file',
    pick: async () => {
      const picked = await vscode.window.showOpenDialog({
        title,
        canSelectMany: false,
        filters: { Images: [...IMAGE_FILE_EXTENSIONS] },
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      });
      return picked?.[0] ? loadImage(picked[0]) : undefined;
    },
  });
  const files = await vscode.workspace.findFiles(IMAGE_GLOB, '**/{node_modules,.git}/**', 500);
  files.sort((a, b) => a.path.localeCompare(b.path));
  if (files.length) items.push({ label: 'Workspace', kind: vscode.QuickPickItemKind.Separator, pick: async () => undefined });
  for (const f of files) {
    if (active && f.toString() === active.toString()) continue;
    items.push({ label: `$(file-media) ${path.basename(f.path)}`, description: vscode.workspace.asRelativePath(path.dirname(f.fsPath), false), pick: () => loadImage(f) });
  }
  const choice = await vscode.window.showQuickPick(items, { title, placeHolder: 'Choose an image', matchOnDescription: true });
  return choice?.pick();
}

/** A path or file URI to an image on the clipboard (copied from a file manager or terminal). */
function clipboardImageUri(text: string): vscode.Uri | undefined {
  const t = text.trim();
  if (!t || t.includes('\n') || t.length > 4096) return undefined;
  try {
    const uri = t.startsWith('file://') ? vscode.Uri.parse(t) : path.isAbsolute(t) ? vscode.Uri.file(t) : undefined;
    return uri && isImageUri(uri) ? uri : undefined;
  } catch {
    return undefined;
  }
}
