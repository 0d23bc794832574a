import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatComment, wrapText } from '../server/protocol/commentSyntax';

/** Plain-text languages get the description itself, not a comment. */
const PLAIN = new Set(['plaintext', 'text', 'log']);

export type InsertStyle = 'markdown' | 'comment' | 'plain';

export function insertStyleFor(languageId: string): InsertStyle {
  if (languageId === 'markdown' || languageId === 'mdx') return 'markdown';
  return PLAIN.has(languageId) ? 'plain' : 'comment';
}

/** Keeps alt text on one line and free of characters that would end the Markdown link text. */
export function altText(description: string): string {
  return description.replace(/\s+/g, ' ').replace(/[[\]]/g, '').trim();
}

/** Relative link from a document to an image, the way VS Code's Markdown paste writes it (spaces escaped). */
export function markdownLink(alt: string, documentUri: vscode.Uri, imageUri: vscode.Uri): string {
  let rel = path.posix.relative(path.posix.dirname(documentUri.path), imageUri.path);
  if (!rel.startsWith('.')) rel = rel || path.posix.basename(imageUri.path);
  const target = rel.split('/').map((s) => encodeURIComponent(s).replace(/%2B/g, '+')).join('/');
  return `![${altText(alt)}](${target})`;
}

/** The description as a comment in the document's language (the table the server's code action uses too), or
 * undefined when the language is not in it. */
export function commentFor(languageId: string, text: string, indent: string): string | undefined {
  return formatComment(languageId, wrapText(text), indent);
}

/** Inserts text at each cursor of the editor (used for answers from the panel). */
export async function insertPlainAtCursor(editor: vscode.TextEditor, text: string): Promise<boolean> {
  return editor.edit((b) => editor.selections.forEach((s) => b.replace(s, text)));
}

/**
 * Inserts an image description at `position`: an image link in Markdown, a comment in code, the text in plain text.
 * `imageUri` is the image file as the document should reference it (Markdown only).
 */
export async function insertDescription(editor: vscode.TextEditor, position: vscode.Position, description: string, imageUri?: vscode.Uri): Promise<void> {
  const doc = editor.document;
  const style = insertStyleFor(doc.languageId);
  const indent = doc.lineAt(position.line).text.match(/^\s*/)?.[0] ?? '';
  if (style === 'markdown' && imageUri) {
    await editor.edit((b) => b.insert(position, markdownLink(description, doc.uri, imageUri)));
    return;
  }
  if (style === 'plain' || style === 'markdown') {
    await editor.edit((b) => b.insert(position, description));
    return;
  }
  const comment = commentFor(doc.languageId, description, indent);
  if (comment !== undefined) {
    await editor.edit((b) => b.insert(position, comment));
    return;
  }
  // Unknown language: insert the lines, then let VS Code comment them with the language's own configuration.
  const lines = wrapText(description);
  const text = lines.map((l, i) => `${i ? indent : ''}${l}`).join('\n');
  await editor.edit((b) => b.insert(position, text));
  const end = new vscode.Position(position.line + lines.length - 1, (lines.length > 1 ? indent.length : position.character) + lines[lines.length - 1].length);
  await vscode.window.showTextDocument(doc, { viewColumn: editor.viewColumn, selection: new vscode.Selection(position, end) });
  await vscode.commands.executeCommand('editor.action.addCommentLine');
  const after = vscode.window.activeTextEditor;
  if (after?.document === doc) after.selection = new vscode.Selection(after.selection.end, after.selection.end);
}
