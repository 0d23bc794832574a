import * as vscode from 'vscode';

let last: vscode.TextEditor | undefined;

/** Remembers the last focused text editor: while a webview has focus, `activeTextEditor` is undefined. */
export function trackTextEditors(): vscode.Disposable {
  last = vscode.window.activeTextEditor;
  return vscode.window.onDidChangeActiveTextEditor((e) => {
    if (e && e.document.uri.scheme !== 'output') last = e;
  });
}

/** The active text editor, or the last one that is still visible. */
export function targetTextEditor(): vscode.TextEditor | undefined {
  const active = vscode.window.activeTextEditor;
  if (active) return active;
  if (last && vscode.window.visibleTextEditors.some((e) => e.document === last!.document)) {
    return vscode.window.visibleTextEditors.find((e) => e.document === last!.document && e.viewColumn === last!.viewColumn) ?? last;
  }
  return undefined;
}
