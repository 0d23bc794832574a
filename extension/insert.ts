import * as path from 'node:path';
import * as vscode from 'vscode';

/** Line-comment tokens for common languages; others go through VS Code's own "Add Line Comment". */
const LINE_COMMENT: Record<string, string> = {};
for (const id of ['javascript', 'typescript', 'javascriptreact', 'typescriptreact', 'c', 'cpp', 'cuda-cpp', 'csharp', 'java', 'go', 'rust', 'swift', 'kotlin', 'dart', 'php', 'scala', 'groovy', 'jsonc', 'objective-c', 'objective-cpp', 'fsharp', 'scss', 'less', 'zig', 'proto', 'glsl', 'hlsl', 'wgsl'])
  LINE_COMMENT[id] = '//';
for (const id of ['python', 'shellscript', 'ruby', 'perl', 'r', 'yaml', 'toml', 'dockerfile', 'makefile', 'powershell', 'julia', 'elixir', 'coffeescript', 'cmake', 'properties', 'graphql', 'nix', 'terraform', 'hcl'])
  LINE_COMMENT[id] = '#';
for (const id of ['sql', 'lua', 'haskell', 'elm', 'ada']) LINE_COMMENT[id] = '--';
for (const id of ['latex', 'tex', 'bibtex', 'matlab', 'erlang']) LINE_COMMENT[id] = '%';
for (const id of ['clojure', 'lisp', 'scheme', 'ini']) LINE_COMMENT[id] = ';';
LINE_COMMENT.vb = "'";
const BLOCK_COMMENT: Record<string, [string, string]> = {
  html: ['<!--', '-->'],
  xml: ['<!--', '-->'],
  svg: ['<!--', '-->'],
  css: ['/*', '*/'],
};

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

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split(/\n+/)) {
    let line = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) out.push(line);
  }
  return out.length ? out : [''];
}

/** The description as a comment in the document's language, or undefined when the language is not in the tables. */
export function commentFor(languageId: string, text: string, indent: string): string | undefined {
  const lines = wrap(text, 80);
  const line = LINE_COMMENT[languageId];
  if (line) return lines.map((l, i) => `${i ? indent : ''}${line} ${l}`).join('\n');
  const block = BLOCK_COMMENT[languageId];
  if (block) return lines.length === 1 ? `${block[0]} ${lines[0]} ${block[1]}` : [block[0], ...lines.map((l) => `${indent}  ${l}`), `${indent}${block[1]}`].join('\n');
  return undefined;
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
  const lines = wrap(description, 80);
  const text = lines.map((l, i) => `${i ? indent : ''}${l}`).join('\n');
  await editor.edit((b) => b.insert(position, text));
  const end = new vscode.Position(position.line + lines.length - 1, (lines.length > 1 ? indent.length : position.character) + lines[lines.length - 1].length);
  await vscode.window.showTextDocument(doc, { viewColumn: editor.viewColumn, selection: new vscode.Selection(position, end) });
  await vscode.commands.executeCommand('editor.action.addCommentLine');
  const after = vscode.window.activeTextEditor;
  if (after?.document === doc) after.selection = new vscode.Selection(after.selection.end, after.selection.end);
}
