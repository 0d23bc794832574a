import type { Position, Range } from 'vscode-languageserver/node';
import { RequestError } from './errors';

/**
 * Shape checks for the standard LSP requests' params, which arrive from the wire unchecked: a malformed request is
 * refused as InvalidParams instead of failing inside a handler as an InternalError.
 */
function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkPosition(v: unknown, what: string): Position {
  if (!isRecord(v) || !isIndex(v.line) || !isIndex(v.character)) throw new RequestError('params', `${what} must be {line, character} with non-negative integers`);
  return { line: v.line, character: v.character };
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** `{textDocument: {uri}}`, the part every document request shares. */
export function checkDocumentParams(params: unknown): { uri: string } {
  if (!isRecord(params) || !isRecord(params.textDocument) || typeof params.textDocument.uri !== 'string') {
    throw new RequestError('params', 'params must carry textDocument.uri');
  }
  return { uri: params.textDocument.uri };
}

export function checkHoverParams(params: unknown): { uri: string; position: Position } {
  const { uri } = checkDocumentParams(params);
  return { uri, position: checkPosition((params as Record<string, unknown>).position, 'position') };
}

export function checkCodeActionParams(params: unknown): { uri: string; range: Range; only?: string[] } {
  const { uri } = checkDocumentParams(params);
  const p = params as Record<string, unknown>;
  if (!isRecord(p.range)) throw new RequestError('params', 'range must be {start, end}');
  const range = { start: checkPosition(p.range.start, 'range.start'), end: checkPosition(p.range.end, 'range.end') };
  const only = isRecord(p.context) ? p.context.only : undefined;
  if (only !== undefined && (!Array.isArray(only) || !only.every((o) => typeof o === 'string'))) throw new RequestError('params', 'context.only must be a list of kinds');
  return { uri, range, only: only as string[] | undefined };
}

/** `workspace/executeCommand` params: the command's name and its arguments. */
export function checkCommandParams(params: unknown): { command: string; args: unknown[] | undefined } {
  if (!isRecord(params) || typeof params.command !== 'string') throw new RequestError('params', 'params must carry a command name');
  const args = params.arguments;
  if (args !== undefined && !Array.isArray(args)) throw new RequestError('params', 'arguments must be a list');
  return { command: params.command, args };
}

/** `textDocument/didOpen`: a document the store can hold (its text a string, its version an integer). */
export function isDidOpenParams(p: unknown): boolean {
  if (!isRecord(p) || !isRecord(p.textDocument)) return false;
  const d = p.textDocument;
  return typeof d.uri === 'string' && typeof d.languageId === 'string' && Number.isSafeInteger(d.version) && typeof d.text === 'string';
}

/** `textDocument/didChange`: full or ranged changes carrying text. */
export function isDidChangeParams(p: unknown): boolean {
  if (!isRecord(p) || !isRecord(p.textDocument) || typeof p.textDocument.uri !== 'string' || !Number.isSafeInteger(p.textDocument.version)) return false;
  if (!Array.isArray(p.contentChanges)) return false;
  return p.contentChanges.every((c) => {
    if (!isRecord(c) || typeof c.text !== 'string') return false;
    if (c.range === undefined) return true;
    try {
      checkPosition(isRecord(c.range) ? c.range.start : undefined, 'range.start');
      checkPosition(isRecord(c.range) ? c.range.end : undefined, 'range.end');
      return true;
    } catch {
      return false;
    }
  });
}

export { isRecord };
