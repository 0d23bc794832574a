import {
  CodeAction,
  TextDocumentEdit,
  TextEdit,
  type CancellationToken,
  type CodeActionParams,
  type WorkspaceEdit,
} from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { APPLY_DESCRIPTION_COMMAND, CodeActionKinds, type CodeActionData } from '../protocol';
import { formatComment, wrapText } from '../protocol/commentSyntax';
import type { ServerContext } from './context';
import { clip } from './describe';
import { RequestError, toResponseError } from './errors';
import { findImageRefs, needsAltText, type ImageRef } from './imageRefs';
import { checkCodeActionParams, checkCommandParams, isRecord } from './requestParams';
import { resolveRefPath } from './resolveRef';

const TITLES: Record<CodeActionData['kind'], string> = {
  altText: 'Generate alt text',
  describeComment: 'Insert description as comment',
};

function escapeMarkdownAlt(text: string): string {
  return text.replace(/[\\[\]]/g, (c) => `\\${c}`);
}

function escapeAttribute(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Lists actions for image references touching the selection. No model work happens here: only on resolve. */
async function provide(ctx: ServerContext, params: CodeActionParams): Promise<CodeAction[]> {
  const { uri, range, only } = checkCodeActionParams(params);
  const doc = ctx.documents.get(uri);
  if (!doc) return [];
  const from = doc.offsetAt(range.start);
  const to = doc.offsetAt(range.end);
  const actions: CodeAction[] = [];
  for (const ref of findImageRefs(doc.getText(), doc.languageId)) {
    if (ref.end < from || ref.start > to) continue;
    const kind: CodeActionData['kind'] | undefined = needsAltText(ref) ? 'altText' : ref.kind === 'code' ? 'describeComment' : undefined;
    if (!kind) continue;
    const lspKind = CodeActionKinds[kind];
    if (only && !only.some((o) => lspKind === o || lspKind.startsWith(`${o}.`))) continue;
    const imagePath = await resolveRefPath(ref, doc.uri, ctx.guard);
    if (!imagePath) continue;
    const data: CodeActionData = { kind, uri: doc.uri, version: doc.version, imagePath, target: ref.target, offset: ref.start };
    const action = CodeAction.create(TITLES[kind], lspKind);
    action.data = data;
    if (!ctx.client.resolveCodeActionEdit) action.command = { title: TITLES[kind], command: APPLY_DESCRIPTION_COMMAND, arguments: [data] };
    actions.push(action);
  }
  return actions;
}

/** The same reference in the document as it is now: same target, nearest to where it was. */
function findAgain(doc: TextDocument, data: CodeActionData): ImageRef | undefined {
  let best: ImageRef | undefined;
  for (const r of findImageRefs(doc.getText(), doc.languageId)) {
    if (r.target !== data.target || r.definition) continue;
    if (!best || Math.abs(r.start - data.offset) < Math.abs(best.start - data.offset)) best = r;
  }
  return best;
}

function editFor(doc: TextDocument, ref: ImageRef, kind: CodeActionData['kind'], description: string): TextEdit {
  if (kind === 'describeComment') {
    const pos = doc.positionAt(ref.start);
    const lineText = doc.getText({ start: { line: pos.line, character: 0 }, end: pos });
    const indent = /^\s*/.exec(lineText)?.[0] ?? '';
    const lines = wrapText(`Image ${ref.target}: ${description}`);
    // Languages outside the shared table get a `//` comment: the server has no language configuration to ask.
    const comment = formatComment(doc.languageId, lines, indent) ?? lines.map((l, i) => `${i ? indent : ''}// ${l}`).join('\n');
    return TextEdit.insert({ line: pos.line, character: 0 }, `${indent}${comment}\n`);
  }
  if (ref.kind === 'markdown' && ref.alt) {
    return TextEdit.replace({ start: doc.positionAt(ref.alt.start), end: doc.positionAt(ref.alt.end) }, escapeMarkdownAlt(description));
  }
  const attr = `alt="${escapeAttribute(description)}"`;
  if (ref.alt) return TextEdit.replace({ start: doc.positionAt(ref.alt.start), end: doc.positionAt(ref.alt.end) }, attr);
  return TextEdit.insert(doc.positionAt(ref.altInsertAt ?? ref.start + 4), ` ${attr}`);
}

function isData(v: unknown): v is CodeActionData {
  const d = v as Partial<CodeActionData> | undefined;
  return !!d && (d.kind === 'altText' || d.kind === 'describeComment') && typeof d.uri === 'string' && typeof d.imagePath === 'string' &&
    typeof d.target === 'string' && typeof d.offset === 'number';
}

/** Runs the model and builds the edit. Uses a versioned edit so the client refuses it if the document moved on meanwhile. */
async function computeEdit(ctx: ServerContext, data: CodeActionData, token: CancellationToken): Promise<WorkspaceEdit> {
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort());
  try {
    const s = ctx.settings;
    const prompt = data.kind === 'altText' ? s.altText.prompt : s.hover.prompt;
    const maxNewTokens = data.kind === 'altText' ? s.altText.maxNewTokens : s.hover.maxNewTokens;
    // Interactive lane: the user picked this action and is waiting for it.
    const raw = await ctx.describer.describe(data.imagePath, prompt, maxNewTokens, 'interactive', abort.signal);
    const description = data.kind === 'altText' ? clip(raw, s.altText.maxChars) : raw;
    if (!description) throw new Error('the model returned an empty description');
    const doc = ctx.documents.get(data.uri);
    if (!doc) throw new RequestError('params', `${data.uri} is not open any more`);
    const ref = findAgain(doc, data);
    if (!ref) throw new RequestError('params', `the image reference ${data.target} is no longer in the document`);
    const edit = editFor(doc, ref, data.kind, description);
    if (ctx.client.documentChanges) return { documentChanges: [TextDocumentEdit.create({ uri: doc.uri, version: doc.version }, [edit])] };
    return { changes: { [doc.uri]: [edit] } };
  } catch (err) {
    throw toResponseError(err, token);
  } finally {
    sub.dispose();
  }
}

export function registerCodeActions(ctx: ServerContext): void {
  ctx.connection.onCodeAction(async (params) => {
    try {
      return await provide(ctx, params);
    } catch (err) {
      throw toResponseError(err);
    }
  });
  ctx.connection.onCodeActionResolve(async (action, token) => {
    if (!isRecord(action)) throw toResponseError(new RequestError('params', 'params must be a code action'), token);
    if (!isData(action.data)) return action;
    action.edit = await computeEdit(ctx, action.data, token);
    return action;
  });
  ctx.connection.onExecuteCommand(async (params, token) => {
    try {
      const { command, args } = checkCommandParams(params);
      return await applyDescription(ctx, command, args, token);
    } catch (err) {
      throw toResponseError(err, token);
    }
  });
}

async function applyDescription(ctx: ServerContext, command: string, args: unknown[] | undefined, token: CancellationToken): Promise<boolean> {
  if (command !== APPLY_DESCRIPTION_COMMAND) throw new RequestError('params', `unknown command ${command}`);
  const data: unknown = args?.[0];
  if (!isData(data)) throw new RequestError('params', `${APPLY_DESCRIPTION_COMMAND} needs the code action's data as its argument`);
  const edit = await computeEdit(ctx, data, token);
  const applied = await ctx.connection.workspace.applyEdit({ label: TITLES[data.kind], edit });
  return applied.applied;
}
