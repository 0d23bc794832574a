import * as vscode from 'vscode';
import { DefaultPrompts } from '../server/protocol';

const HISTORY_KEY = 'diffusionvl.questionHistory';
const HISTORY_MAX = 30;
const SUGGESTIONS = [DefaultPrompts.describe, 'What does the text say?', 'How many shapes are there?'];

export function questionHistory(ctx: vscode.ExtensionContext): string[] {
  return ctx.globalState.get<string[]>(HISTORY_KEY, []);
}

export async function rememberQuestion(ctx: vscode.ExtensionContext, q: string): Promise<void> {
  const rest = questionHistory(ctx).filter((h) => h !== q);
  await ctx.globalState.update(HISTORY_KEY, [q, ...rest].slice(0, HISTORY_MAX));
}

/** Asks for a question; earlier questions (most recent first) are offered, and typing anything asks that instead. */
export function askQuestion(ctx: vscode.ExtensionContext, imageLabel: string): Promise<string | undefined> {
  const history = questionHistory(ctx);
  const base: vscode.QuickPickItem[] = [
    ...(history.length ? [{ label: 'Recent', kind: vscode.QuickPickItemKind.Separator }] : []),
    ...history.map((label) => ({ label, iconPath: new vscode.ThemeIcon('history') })),
    { label: 'Suggestions', kind: vscode.QuickPickItemKind.Separator },
    ...SUGGESTIONS.filter((s) => !history.includes(s)).map((label) => ({ label, iconPath: new vscode.ThemeIcon('lightbulb') })),
  ];
  const qp = vscode.window.createQuickPick();
  qp.title = `Ask about ${imageLabel}`;
  qp.placeholder = 'Type a question, or pick an earlier one';
  qp.items = base;
  qp.matchOnDescription = false;
  // The typed text is always the first choice, so Enter asks exactly what was typed.
  qp.onDidChangeValue((v) => {
    const typed = v.trim();
    qp.items = typed && !base.some((i) => i.label === typed) ? [{ label: typed, description: 'ask', alwaysShow: true }, ...base] : base;
  });
  return new Promise((resolve) => {
    let done = false;
    qp.onDidAccept(() => {
      const q = (qp.selectedItems[0]?.label ?? qp.value).trim();
      if (!q) return;
      done = true;
      resolve(q);
      qp.hide();
    });
    qp.onDidHide(() => {
      if (!done) resolve(undefined);
      qp.dispose();
    });
    qp.show();
  });
}
