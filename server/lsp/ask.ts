import { ProgressType } from 'vscode-languageserver/node';
import { CancelledError } from '../engine/api';
import { Methods, type AskPartial } from '../protocol';
import { answer } from './answer';
import type { ServerContext } from './context';
import { RequestError } from './errors';
import { notify, onRequest } from './handlers';

const partialType = new ProgressType<AskPartial>();

export function registerAsk(ctx: ServerContext): void {
  onRequest(ctx.connection, Methods.ask, async (params, token) => {
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    const progress = params?.workDoneToken !== undefined ? ctx.connection.window.attachWorkDoneProgress(params.workDoneToken) : undefined;
    try {
      if (typeof params !== 'object' || params === null) throw new RequestError('params', 'params must be an object');
      const stream = (p: AskPartial): void => {
        if (params.streamToken !== undefined) {
          notify(ctx.connection, Methods.partialAnswer, { token: params.streamToken, ...p });
        }
        if (params.partialResultToken !== undefined) void ctx.connection.sendProgress(partialType, params.partialResultToken, p);
        if (p.kind === 'block') progress?.report(p.text.length > 200 ? '…' + p.text.slice(-200) : p.text);
      };
      progress?.begin('DiffusionVL', undefined, 'waiting for the model…', true);
      const result = await answer(ctx, { image: params.image, question: params.question, options: params.options, streamSteps: params.streamSteps === true }, abort.signal, stream);
      if (token.isCancellationRequested) throw new CancelledError();
      return result;
    } finally {
      sub.dispose();
      progress?.done();
    }
  });
}
