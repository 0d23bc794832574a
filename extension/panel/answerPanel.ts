import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import type { AskResult, AskStats } from '../../server/protocol';
import type { Sidecar } from '../client';
import { SidecarError } from '../client';
import { DEMO_SUMMARY, REAL_MODEL_COMMANDS, REAL_MODEL_HINT } from '../demo';
import { targetTextEditor } from '../editors';
import { extensionOfMime, type PickedImage, toImageSource } from '../images';
import { insertPlainAtCursor } from '../insert';
import { generationOptions, isDemoModel } from '../settings';
import { reportToLog, toUserError } from '../userErrors';

/** Commands the panel's buttons may run (empty-answer suggestions, error fixes, the demo banner). */
const PANEL_COMMANDS = new Set([...REAL_MODEL_COMMANDS, 'diffusionvl.askAboutImage', 'diffusionvl.showLog', 'workbench.action.openSettings']);
/** globalState key: whether the panel shows every denoising step, not only committed blocks. */
const SHOW_STEPS_KEY = 'diffusionvl.panel.showSteps';

interface PanelAction {
  title: string;
  command: string;
  args?: unknown[];
}

/** Messages the webview sends (media/panel/panel.js). */
type FromWebview =
  | { type: 'ready' }
  | { type: 'ask'; question: string }
  | { type: 'cancel'; id: number }
  | { type: 'copy'; id: number }
  | { type: 'insert'; id: number }
  | { type: 'command'; command: string; args?: unknown[] }
  | { type: 'showSteps'; on: boolean }
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
    const panel = vscode.window.createWebviewPanel('diffusionvl.answer', title, { viewColumn: AnswerPanel.column(), preserveFocus: false }, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [vscode.Uri.joinPath(ctx.extensionUri, 'media')],
    });
    const p = new AnswerPanel(ctx, sidecar, panel, onQuestion);
    if (image) p.setImage(image);
    AnswerPanel.current = p;
    return p;
  }

  /**
   * Where a new panel goes: next to the editor the first time, then as a tab in the group that already holds answer
   * panels, so asking about many images never adds more than one group.
   */
  private static column(): vscode.ViewColumn {
    for (const p of AnswerPanel.panels.values()) if (p.panel.viewColumn !== undefined) return p.panel.viewColumn;
    const current = AnswerPanel.current?.panel.viewColumn;
    return current ?? vscode.ViewColumn.Beside;
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
    this.postDemo();
    await this.post({ type: 'start', id: ex.id, question, demo: isDemoModel(this.ctx) });
    const options = generationOptions();
    const demo = isDemoModel(this.ctx);
    try {
      const result = await this.sidecar.ask(
        { image: toImageSource(img), question, options, streamSteps: this.showSteps },
        (p) => {
          if (ex.done) return;
          if (p.kind === 'block') {
            ex.text = p.text;
            void this.post({ type: 'partial', id: ex.id, text: p.text, block: p.block });
          } else {
            void this.post({ type: 'step', id: ex.id, text: p.text, block: p.block, step: p.step, blockText: p.blockText ?? '' });
          }
        },
        ex.cts!.token,
      );
      ex.text = result.text;
      ex.done = true;
      const empty = result.text.trim() ? undefined : emptyAnswer(result.stats, options.maxNewTokens ?? 0, demo);
      await this.post({ type: 'done', id: ex.id, text: result.text, stats: statsLine(result), demo, empty });
      return result.text;
    } catch (err) {
      ex.done = true;
      const cancelled = err instanceof SidecarError && err.cancelled;
      if (cancelled) {
        await this.post({ type: 'cancelled', id: ex.id });
      } else {
        // Shown here only (the panel is in view), in the user's words; the server's message goes to the log.
        const e = toUserError(err);
        reportToLog(this.sidecar.log, `ask about ${img.label}`, e);
        await this.post({ type: 'error', id: ex.id, message: e.headline, action: e.action });
      }
      return undefined;
    } finally {
      ex.cts?.dispose();
      ex.cts = undefined;
    }
  }

  private get showSteps(): boolean {
    return this.ctx.globalState.get<boolean>(SHOW_STEPS_KEY, false);
  }

  /** The demo banner: shown while the demo model answers, gone once a real model is set. */
  private postDemo(): void {
    void this.post({ type: 'demo', on: isDemoModel(this.ctx), summary: DEMO_SUMMARY, hint: REAL_MODEL_HINT, showSteps: this.showSteps });
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
      case 'command':
        if (PANEL_COMMANDS.has(m.command)) await vscode.commands.executeCommand(m.command, ...(m.args ?? []));
        break;
      case 'showSteps':
        await this.ctx.globalState.update(SHOW_STEPS_KEY, m.on);
        break;
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
  <aside id="demo" hidden><strong>Demo model.</strong> <span id="demo-summary"></span> <span id="demo-hint"></span>
    <span class="links"><button class="secondary" data-command="diffusionvl.downloadModel">Download Model…</button> <button class="secondary" data-command="diffusionvl.useLocalModelFolder">Use Local Model Folder…</button></span></aside>
  <figure id="figure" hidden><img id="image" alt=""><figcaption id="caption"></figcaption></figure>
  <div id="pastezone" hidden tabindex="0" role="button">Paste an image here (Ctrl+V / ⌘V) or drop an image file.</div>
  <section id="exchanges" aria-live="polite"></section>
  <form id="ask" hidden>
    <input id="question" type="text" placeholder="Ask another question about this image" aria-label="Question">
    <button type="submit">Ask</button>
  </form>
  <label id="steps-toggle" hidden><input id="show-steps" type="checkbox"> Show each denoising step, not only each committed block</label>
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

/**
 * Why an answer came back empty, and what to try. The model ending at once (or filling its budget with spaces) is a
 * real outcome, not an error: say so instead of showing an empty box.
 */
function emptyAnswer(s: AskStats | undefined, maxNewTokens: number, demo: boolean): { headline: string; suggestions: PanelAction[] } {
  const usedBudget = !!s && maxNewTokens > 0 && s.generatedTokens >= maxNewTokens;
  const headline = usedBudget
    ? `The model used all ${maxNewTokens} tokens without writing any text.`
    : !s || s.generatedTokens === 0
      ? 'The model ended its answer at once: it had nothing to say to this question.'
      : 'The model answered only with blank space: it had nothing to say to this question.';
  const suggestions: PanelAction[] = [];
  if (demo) suggestions.push({ title: 'Get a Real Model…', command: 'diffusionvl.downloadModel' });
  suggestions.push({ title: usedBudget ? 'Allow More Tokens…' : 'Answer Length Setting…', command: 'workbench.action.openSettings', args: ['diffusionvl.maxNewTokens'] });
  const tips = demo
    ? `Try a question the demo model knows (e.g. "Describe the image." or "Which box does the arrow point to?"), or a real model.`
    : 'Try rephrasing the question, or allow a longer answer.';
  return { headline: `${headline} ${tips}`, suggestions };
}

/** The stats line under an answer; a remote server is named, with the DiffusionVL stats when it sent them. */
function statsLine(r: AskResult): string {
  const s = r.stats;
  const where = r.server ? `${r.model} on ${r.server}` : '';
  if (!s) return where;
  const secs = (s.timings.totalMs / 1000).toFixed(1);
  const drafts = s.verifySteps > 1 ? ` · ${s.drafts.accepted} of ${s.drafts.verified} drafted steps accepted (K = ${s.verifySteps})` : '';
  return `${where ? `${where} · ` : ''}${s.generatedTokens} tokens in ${secs} s · ${s.tokensPerForward.toFixed(2)} tokens/forward${drafts}`;
}
