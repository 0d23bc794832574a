import { ProgressType } from 'vscode-languageserver/node';
import { CancelledError, type GenerationEvent, type GenerationResult } from '../engine/api';
import { checkGenerationOptions } from '../engine/generationOptions';
import { Methods, type AskPartial, type AskResult, type PartialAnswerParams } from '../protocol';
import type { ServerContext } from './context';
import { RequestError } from './errors';
import { onRequest } from './handlers';
import { resolveImage } from './imageInput';

const partialType = new ProgressType<AskPartial>();
const MAX_QUESTION_CHARS = 8000;

function toResult(r: GenerationResult, queueMs: number, loadMs: number, model: string): AskResult {
  const f = r.stats.forwards;
  const t = r.stats.timings;
  return {
    text: r.text,
    model,
    stats: {
      generatedTokens: r.stats.generatedTokens,
      forwards: { prefill: f.prefill, denoise: f.denoise, commit: f.commit, total: f.prefill + f.denoise + f.commit },
      tokensPerForward: r.stats.tokensPerForward,
      timings: { queueMs, loadMs, visionMs: t.visionMs, prefillMs: t.prefillMs, decodeMs: t.decodeMs, totalMs: t.totalMs },
      cache: r.stats.cache,
    },
  };
}

export function registerAsk(ctx: ServerContext): void {
  onRequest(ctx.connection, Methods.ask, async (params, token) => {
    const received = performance.now();
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    const progress = params?.workDoneToken !== undefined ? ctx.connection.window.attachWorkDoneProgress(params.workDoneToken) : undefined;
    try {
      if (typeof params !== 'object' || params === null) throw new RequestError('params', 'params must be an object');
      if (typeof params.question !== 'string' || params.question.trim() === '') throw new RequestError('params', 'question must be a non-empty string');
      if (params.question.length > MAX_QUESTION_CHARS) throw new RequestError('params', `question is longer than ${MAX_QUESTION_CHARS} characters`);
      const options = checkGenerationOptions(params.options);
      const image = await resolveImage(params.image, ctx.guard);

      progress?.begin('DiffusionVL', undefined, 'waiting for the model…', true);
      const stream = (p: AskPartial): void => {
        if (params.streamToken !== undefined) {
          void ctx.connection.sendNotification(Methods.partialAnswer, { token: params.streamToken, ...p } satisfies PartialAnswerParams);
        }
        if (params.partialResultToken !== undefined) void ctx.connection.sendProgress(partialType, params.partialResultToken, p);
        if (p.kind === 'block') progress?.report(p.text.length > 200 ? '…' + p.text.slice(-200) : p.text);
      };
      let committed = '';
      const onEvent = (e: GenerationEvent): void => {
        if (e.kind === 'block') {
          committed = e.text;
          stream({ kind: 'block', block: e.block, text: e.text });
        } else {
          stream({ kind: 'step', block: e.block, step: e.step, text: committed, blockText: e.blockText });
        }
      };

      let queueMs = 0;
      const model = ctx.models.modelDir() ?? '';
      const { value, loadMs } = await ctx.queue.run('interactive', abort.signal, () => {
        queueMs = performance.now() - received;
        return ctx.models.use((engine) =>
          engine.ask({ images: [image.input], question: params.question, options }, { signal: abort.signal, steps: params.streamSteps === true, onEvent }),
        );
      });
      if (token.isCancellationRequested) throw new CancelledError();
      return toResult(value, queueMs, loadMs, model);
    } finally {
      sub.dispose();
      progress?.done();
    }
  });
}
