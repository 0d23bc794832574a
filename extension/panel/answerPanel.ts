import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import type { AskStats } from '../../server/protocol';
import type { Sidecar } from '../client';
import { errorText, SidecarError } from '../client';
import { targetTextEditor } from '../editors';
import { extensionOfMime, type PickedImage, toImageSource } from '../images';
import { insertPlainAtCursor } from '../insert';
import { generationOptions } from '../settings';

/** Messages the webview sends (media/panel/panel.js). */
type FromWebview =
  | { type: 'ready' }
  | { type: 'ask'; question: string }
  | { type: 'cancel'; id: number }
  | { type: 'copy'; id: number }
  | { type: 'insert'; id: number }
  | { type: 'pastedImage'; mime: string; base64: string; name?: string };

interface Exchange {
  id: number;
  question: string;
  text: string;
  done: boolean;
  cts?: vscode.CancellationTokenSource;
}

/**
 * The answer panel: the image on top, then each question with its answer forming block by block.
 * One panel per image; asking again about the same image reuses it. Scripts and styles come only from media/.
 */
export class AnswerPanel implements vscode.Disposable {
  private static readonly panels = new Map<string, AnswerPanel>();
  private static nextId = 1;
  /** Most recently used panel: the target of "cancel" from the palette. */
  static current: AnswerPanel | undefined;

  private image: PickedImage | undefined;
  private readonly exchanges = new Map<number, Exchange>();
  private readonly ready: Promise<void>;
  private readonly subs: vscode.Disposable[] = [];
  private pasteWaiter: ((img: PickedImage | undefined) => void) | undefined;
  private key: string | undefined;
  private disposed = false;

  private constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly sidecar: Sidecar,
    private readonly panel: vscode.WebviewPanel,
    private readonly onQuestion: (panel: AnswerPanel, q: string) => void,
  ) {
    let markReady: () => void = () => undefined;
    this.ready = new Promise((r) => (markReady = r));
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.png');
    panel.webview.html = this.html();
    this.subs.push(
      panel.webview.onDidReceiveMessage((m: FromWebview) => {
        if (m.type === 'ready') markReady();
        else void this.handle(m);
      }),
      panel.onDidDispose(() => this.dispose()),
      panel.onDidChangeViewState((e) => {
        if (e.webviewPanel.active) AnswerPanel.current = this;
      }),
    );
  }

  /** Opens (or reveals) the panel for an image; without one, the panel waits for a pasted image. */
  static show(ctx: vscode.ExtensionContext, sidecar: Sidecar, image: PickedImage | undefined, onQuestion: (panel: AnswerPanel, q: string) => void): AnswerPanel {
    const key = image ? AnswerPanel.keyOf(image) : undefined;
    const existing = key ? AnswerPanel.panels.get(key) : undefined;
    if (existing) {
      existing.panel.reveal(undefined, true);
      AnswerPanel.current = existing;
      return existing;
    }
    const title = image ? `Ask: ${image.label}` : 'Ask: pasted image';
    const panel = vscode.window.createWebviewPanel('diffusionvl.answer', title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false }, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [vscode.Uri.joinPath(ctx.extensionUri, 'media')],
    });
    const p = new AnswerPanel(ctx, sidecar, panel, onQuestion);
    if (image) p.setImage(image);
    AnswerPanel.current = p;
    return p;
  }

  private static keyOf(img: PickedImage): string {
    return img.uri ? img.uri.toString() : 'bytes:' + crypto.createHash('sha1').update(img.bytes).digest('hex');
  }

  get hasImage(): boolean {
    return this.image !== undefined;
  }

  private setImage(img: PickedImage): void {
    this.image = img;
    this.key = AnswerPanel.keyOf(img);
    AnswerPanel.panels.set(this.key, this);
    this.panel.title = `Ask: ${img.label}`;
    void this.post({ type: 'image', label: img.label, src: `data:${img.mime};base64,${Buffer.from(img.bytes).toString('base64')}` });
  }

  /** Resolves with the image the user pastes (or drops) into the panel; undefined if the panel closes first. */
  waitForPastedImage(): Promise<PickedImage | undefined> {
    void this.post({ type: 'awaitPaste' });
    return new Promise((r) => (this.pasteWaiter = r));
  }

  /** Runs one question; the answer streams into the panel. Resolves with the final text (undefined if it failed). */
  async ask(question: string): Promise<string | undefined> {
    const img = this.image;
    if (!img) return undefined;
    const ex: Exchange = { id: AnswerPanel.nextId++, question, text: '', done: false, cts: new vscode.CancellationTokenSource() };
    this.exchanges.set(ex.id, ex);
    await this.post({ type: 'start', id: ex.id, question });
    try {
      const result = await this.sidecar.ask(
        { image: toImageSource(img), question, options: generationOptions() },
        (p) => {
          if (p.kind !== 'block' || ex.done) return;
          ex.text = p.text;
          void this.post({ type: 'partial', id: ex.id, text: p.text, block: p.block });
        },
        ex.cts!.token,
      );
      ex.text = result.text;
      ex.done = true;
      await this.post({ type: 'done', id: ex.id, text: result.text, stats: statsLine(result.stats) });
      return result.text;
    } catch (err) {
      ex.done = true;
      const cancelled = err instanceof SidecarError && err.cancelled;
      await this.post({ type: cancelled ? 'cancelled' : 'error', id: ex.id, message: errorText(err) });
      if (!cancelled) void vscode.window.showErrorMessage(`DiffusionVL: ${errorText(err)}`);
      return undefined;
    } finally {
      ex.cts?.dispose();
      ex.cts = undefined;
    }
  }

  /** Cancels every running question in this panel. Returns whether anything was running. */
  cancelAll(): boolean {
    let any = false;
    for (const ex of this.exchanges.values()) {
      if (ex.cts) {
        ex.cts.cancel();
        any = true;
      }
    }
    return any;
  }

  private async handle(m: Exclude<FromWebview, { type: 'ready' }>): Promise<void> {
    switch (m.type) {
      case 'ask':
        if (m.question.trim()) this.onQuestion(this, m.question.trim());
        break;
      case 'cancel':
        this.exchanges.get(m.id)?.cts?.cancel();
        break;
      case 'copy': {
        const ex = this.exchanges.get(m.id);
        if (ex?.text) {
          await vscode.env.clipboard.writeText(ex.text);
          void vscode.window.setStatusBarMessage('$(check) Answer copied', 3000);
        }
        break;
      }
      case 'insert': {
        const ex = this.exchanges.get(m.id);
        const editor = targetTextEditor();
        if (!ex?.text) break;
        if (!editor) {
          void vscode.window.showWarningMessage('Open a text editor to insert the answer into.');
          break;
        }
        await insertPlainAtCursor(editor, ex.text);
        break;
      }
      case 'pastedImage': {
        const bytes = Buffer.from(m.base64, 'base64');
        const label = m.name || `pasted image.${extensionOfMime(m.mime)}`;
        const img: PickedImage = { label, bytes, mime: m.mime };
        this.setImage(img);
        const w = this.pasteWaiter;
        this.pasteWaiter = undefined;
        w?.(img);
        break;
      }
    }
  }

  private async post(msg: unknown): Promise<void> {
    await this.ready;
    await this.panel.webview.postMessage(msg);
  }

  private html(): string {
    const webview = this.panel.webview;
    const nonce = crypto.randomBytes(16).toString('base64');
    const media = (f: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.ctx.extensionUri, 'media', 'panel', f));
    const csp = [
      "default-src 'none'",
      `img-src ${webview.cspSource} data:`,
      `style-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${media('panel.css')}">
<title>DiffusionVL</title>
</head>
<body>
<main>
  <figure id="figure" hidden><img id="image" alt=""><figcaption id="caption"></figcaption></figure>
  <div id="pastezone" hidden tabindex="0" role="button">Paste an image here (Ctrl+V / ⌘V) or drop an image file.</div>
  <section id="exchanges" aria-live="polite"></section>
  <form id="ask" hidden>
    <input id="question" type="text" placeholder="Ask another question about this image" aria-label="Question">
    <button type="submit">Ask</button>
  </form>
</main>
<script nonce="${nonce}" src="${media('panel.js')}"></script>
</body>
</html>`;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.cancelAll();
    if (this.key && AnswerPanel.panels.get(this.key) === this) AnswerPanel.panels.delete(this.key);
    if (AnswerPanel.current === this) AnswerPanel.current = undefined;
    this.pasteWaiter?.(undefined);
    this.pasteWaiter = undefined;
    this.subs.forEach((d) => d.dispose());
    this.panel.dispose();
  }

  static cancelCurrent(): boolean {
    let any = false;
    for (const p of AnswerPanel.panels.values()) any = p.cancelAll() || any;
    return any;
  }
}

function statsLine(s: AskStats): string {
  const secs = (s.timings.totalMs / 1000).toFixed(1);
  return `${s.generatedTokens} tokens in ${secs} s · ${s.tokensPerForward.toFixed(2)} tokens/forward`;
}
