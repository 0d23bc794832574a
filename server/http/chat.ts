import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { GENERATION_OPTIONS } from '../engine/generationOptions';
import type { AskPartial, AskResult, AskStats } from '../protocol';
import { answer, type AnswerDeps } from '../lsp/answer';
import { generationDefaults } from '../lsp/settings';
import { parseChatRequest } from './chatRequest';
import { HttpError, toErrorReply } from './errors';
import { imageSource, type ImageUrlPolicy } from './imageUrl';
import { SseWriter } from './sse';

export interface ChatContext {
  deps: AnswerDeps;
  /** The served model's id (`/v1/models`). */
  modelId(): string;
  images: ImageUrlPolicy;
}

type FinishReason = 'stop' | 'length';

function usage(stats: AskStats | undefined): { prompt_tokens: number; completion_tokens: number; total_tokens: number } | undefined {
  // Answers always carry stats here (this server's own model answers); AskResult allows none for a remote source.
  if (!stats) return undefined;
  const prompt = stats.promptTokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: stats.generatedTokens, total_tokens: prompt + stats.generatedTokens };
}

/**
 * POST /v1/chat/completions on the sidecar's answering path (`answer`: validation, queue, model lifecycle, stats).
 * Streaming sends one chunk per committed block, holding the status line back until the first block so that a
 * refusal (full queue, bad image, no model) still gets its own status; `signal` (the client's connection) cancels.
 */
export async function chatCompletions(ctx: ChatContext, body: unknown, res: ServerResponse, headers: Record<string, string>, signal: AbortSignal): Promise<void> {
  const req = parseChatRequest(body);
  const model = ctx.modelId();
  if (req.model !== undefined && req.model !== model) throw new HttpError(404, `model ${JSON.stringify(req.model)} does not exist; this server serves "${model}"`, 'model_not_found', 'model');
  const images = [];
  for (const [i, url] of req.imageUrls.entries()) images.push(await imageSource(url, i, ctx.images, signal));
  const maxNewTokens = req.options.maxNewTokens ?? generationDefaults(ctx.deps.settings).maxNewTokens ?? GENERATION_OPTIONS.maxNewTokens.default!;
  // The answer ran out of room when every position holds a token (an early end leaves the rest masked).
  const finish = (r: AskResult): FinishReason => ((r.stats?.generatedTokens ?? 0) >= maxNewTokens ? 'length' : 'stop');
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const ask = { images, question: req.question, options: req.options };
  const stops = new StopSequences(req.stop);

  if (!req.stream) {
    const r = await answer(ctx.deps, ask, signal);
    const cut = stops.cut(r.text);
    const completion = {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: cut ?? r.text, refusal: null }, finish_reason: cut !== undefined ? 'stop' : finish(r), logprobs: null }],
      usage: usage(r.stats),
      diffusionvl: r.stats,
    };
    res.writeHead(200, { ...headers, 'content-type': 'application/json' });
    res.end(JSON.stringify(completion));
    return;
  }

  const sse = new SseWriter(res, headers);
  const chunk = (delta: Record<string, unknown>, finishReason: FinishReason | null = null, extra: Record<string, unknown> = {}) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    ...extra,
  });
  let sent = '';
  let stopped = false;
  // A stop sequence ends the answer there and the run with it.
  const run = new AbortController();
  const onAbort = (): void => run.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const emit = (text: string, final: boolean): void => {
    if (stopped) return;
    const cut = stops.cut(text);
    if (cut !== undefined) {
      stopped = true;
      run.abort();
    }
    // Held back: the start of a stop sequence that the next block may complete.
    const shown = cut ?? (final ? text : text.slice(0, Math.max(sent.length, text.length - stops.holdBack)));
    // Decoded text only ever grows at the end; hold back the rare block whose decoding rewrote what was sent.
    if (!shown.startsWith(sent) || shown.length === sent.length) return;
    const content = shown.slice(sent.length);
    sse.send(chunk(sent === '' ? { role: 'assistant', content } : { content }));
    sent = shown;
  };
  let r: AskResult | undefined;
  try {
    r = await answer(ctx.deps, ask, run.signal, (p: AskPartial) => {
      if (p.kind === 'block' && !signal.aborted) emit(p.text, false);
    });
  } catch (err) {
    if (stopped && !signal.aborted) r = undefined;
    else if (!sse.open) throw err;
    else {
      // Mid-stream: the status line is gone, so the error travels as an event, as OpenAI's streams carry it.
      if (!signal.aborted) {
        sse.send(toErrorReply(err).body);
        sse.end();
      }
      return;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (r) emit(r.text, true);
  if (sent === '') sse.send(chunk({ role: 'assistant', content: '' }));
  // A run cancelled at a stop sequence has no stats of its own.
  sse.send(r ? chunk({}, stopped ? 'stop' : finish(r), { usage: usage(r.stats), diffusionvl: r.stats }) : chunk({}, 'stop'));
  sse.end();
}

class StopSequences {
  /** Characters of streamed text held back, so that a stop sequence split across blocks is still found. */
  readonly holdBack: number;

  constructor(private readonly stops: string[]) {
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** The text before the first stop sequence, or undefined when there is none. */
  cut(text: string): string | undefined {
    let at = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    return at < 0 ? undefined : text.slice(0, at);
  }
}
