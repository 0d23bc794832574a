import * as path from 'node:path';
import * as vscode from 'vscode';
import { isImageUri, loadImage, mimeOf, type PickedImage } from '../images';

/** Binary chat attachments (a pasted screenshot): duck-typed, since the type is not in every VS Code API version. */
interface BinaryReference {
  mimeType: string;
  data(): Thenable<Uint8Array>;
  reference?: vscode.Uri;
}

function isBinaryReference(v: unknown): v is BinaryReference {
  const b = v as Partial<BinaryReference> | undefined;
  return typeof b === 'object' && b !== null && typeof b.mimeType === 'string' && b.mimeType.startsWith('image/') && typeof b.data === 'function';
}

function imageUriOf(value: unknown): vscode.Uri | undefined {
  const uri = value instanceof vscode.Uri ? value : value instanceof vscode.Location ? value.uri : undefined;
  return uri && isImageUri(uri) ? uri : undefined;
}

/**
 * Images the user attached to chat requests addressed to this extension. The language-model tool reads these in
 * Restricted Mode (and any outside the workspace): attaching an image is the user's own choice to have it read.
 */
export class AttachedImages {
  private readonly uris = new Set<string>();

  /** The images among a request's references, loaded, in the order given; each is remembered as attached. */
  async collect(references: readonly vscode.ChatPromptReference[]): Promise<PickedImage[]> {
    const out: PickedImage[] = [];
    for (const ref of references) {
      const uri = imageUriOf(ref.value);
      if (uri) {
        this.uris.add(uri.toString());
        out.push(await loadImage(uri));
      } else if (isBinaryReference(ref.value)) {
        const label = ref.value.reference ? path.basename(ref.value.reference.path) : ref.modelDescription || 'attached image';
        if (ref.value.reference) this.uris.add(ref.value.reference.toString());
        out.push({ uri: ref.value.reference, label, bytes: await ref.value.data(), mime: ref.value.mimeType || mimeOf(label) });
      }
    }
    return out;
  }

  has(uri: vscode.Uri): boolean {
    return this.uris.has(uri.toString());
  }
}
