import { MarkupKind, type CancellationToken, type Hover, type HoverParams } from 'vscode-languageserver/node';
import { CancelledError } from '../engine/api';
import type { ServerContext } from './context';
import { codeOf, message, toResponseError } from './errors';
import { findImageRefs, refAt } from './imageRefs';
import { checkHoverParams } from './requestParams';
import { resolveRefPath } from './resolveRef';

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+!<>|~]/g, (c) => `\\${c}`);
}

/**
 * Hovers over image references explain the image. Only the newest hover runs: starting one aborts the previous (the
 * editor shows one hover at a time), and hovers wait behind interactive requests in the queue, never behind each other.
 */
export function registerHover(ctx: ServerContext): void {
  let current: AbortController | undefined;

  ctx.connection.onHover(async (params: HoverParams, token: CancellationToken): Promise<Hover | null> => {
    let checked;
    try {
      checked = checkHoverParams(params);
    } catch (err) {
      throw toResponseError(err, token);
    }
    if (!ctx.settings.hover.enabled) return null;
    const doc = ctx.documents.get(checked.uri);
    if (!doc) return null;
    const ref = refAt(findImageRefs(doc.getText(), doc.languageId), doc.offsetAt(checked.position));
    if (!ref) return null;
    const path = await resolveRefPath(ref, doc.uri, ctx.guard);
    if (!path || token.isCancellationRequested) return null;

    current?.abort();
    const mine = new AbortController();
    current = mine;
    const sub = token.onCancellationRequested(() => mine.abort());
    const range = { start: doc.positionAt(ref.start), end: doc.positionAt(ref.end) };
    try {
      const { prompt, maxNewTokens } = ctx.settings.hover;
      const text = await ctx.describer.describe(path, prompt, maxNewTokens, 'hover', mine.signal);
      if (!text) return null;
      return { contents: { kind: MarkupKind.Markdown, value: `**DiffusionVL:** ${escapeMarkdown(text)}` }, range };
    } catch (err) {
      if (token.isCancellationRequested) throw toResponseError(err, token);
      // Superseded by a newer hover: nobody is looking at this one any more.
      if (err instanceof CancelledError) return null;
      const code = codeOf(err);
      if (code === 'InvalidImage') {
        return { contents: { kind: MarkupKind.Markdown, value: `**DiffusionVL:** cannot read this image: ${escapeMarkdown(message(err))}` }, range };
      }
      ctx.log(`hover: ${message(err)}`, code === 'ModelUnavailable' || code === 'RemoteUnavailable' ? 'warning' : 'error');
      return null;
    } finally {
      sub.dispose();
      if (current === mine) current = undefined;
    }
  });
}
