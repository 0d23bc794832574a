import type { GenerationEvent, ImageInput } from '../engine/api';
import { checkGenerationOptions } from '../engine/generationOptions';
import type { AskPartial, AskResult, ServerSettings } from '../protocol';
import { generationDefaults } from './settings';
import { RequestError } from './errors';
import { resolveImage } from './imageInput';
import type { ModelManager, SourceAnswer } from './modelLifecycle';
import type { WorkspaceGuard } from './pathGuard';
import type { InferenceQueue, Lane } from './queue';

const MAX_QUESTION_CHARS = 8000;

/** What answering needs; the LSP context and the MCP server each provide it. */
export interface AnswerDeps {
  guard: WorkspaceGuard;
  models: ModelManager;
  queue: InferenceQueue;
  /** Read at call time: its generation defaults apply to options the request leaves out. */
  readonly settings: ServerSettings;
}

export interface AnswerRequest {
  /** Unvalidated client input: an {@link ImageSource}. */
  image?: unknown;
  /** Several images instead of `image` (each an {@link ImageSource}), in prompt order; empty for a text-only question. */
  images?: unknown[];
  question: unknown;
  options?: unknown;
  lane?: Lane;
  /** Also report every denoising step (costs a decode per step). */
  streamSteps?: boolean;
}

function toResult(a: SourceAnswer, queueMs: number, loadMs: number): AskResult {
  if (a.source === 'remote') {
    // A DiffusionVL server's stats are its own run's; the wait in this sidecar's queue is added to them.
    const stats = a.answer.stats && { ...a.answer.stats, timings: { ...a.answer.stats.timings, queueMs: a.answer.stats.timings.queueMs + queueMs } };
    return { text: a.answer.text, model: a.answer.model, server: a.server, ...(stats ? { stats } : {}) };
  }
  const r = a.result;
  const model = a.model;
  const f = r.stats.forwards;
  const t = r.stats.timings;
  return {
    text: r.text,
    model,
    stats: {
      promptTokens: r.stats.promptTokens,
      generatedTokens: r.stats.generatedTokens,
      forwards: { prefill: f.prefill, denoise: f.denoise, commit: f.commit, total: f.prefill + f.denoise + f.commit },
      tokensPerForward: r.stats.tokensPerForward,
      verifySteps: r.stats.verify.k,
      drafts: { verified: f.draftsVerified ?? 0, accepted: f.draftsAccepted ?? 0 },
      timings: { queueMs, loadMs, visionMs: t.visionMs, prefillMs: t.prefillMs, decodeMs: t.decodeMs, totalMs: t.totalMs },
      cache: r.stats.cache,
    },
  };
}

/**
 * One question about one image, validated, queued and answered by the shared model (or the remote server that
 * answers in its place): the LSP `diffusionvl/ask` handler, the MCP tools and the HTTP server all go through here, so they accept the same input and report the same stats.
 * Errors carry their kind (mapped to codes by the caller, through toResponseError); cancellation through `signal`
 * rejects with CancelledError.
 */
export async function answer(deps: AnswerDeps, req: AnswerRequest, signal: AbortSignal, onPartial?: (p: AskPartial) => void): Promise<AskResult> {
  const received = performance.now();
  if (typeof req.question !== 'string' || req.question.trim() === '') throw new RequestError('params', 'question must be a non-empty string');
  if (req.question.length > MAX_QUESTION_CHARS) throw new RequestError('params', `question is longer than ${MAX_QUESTION_CHARS} characters`);
  const question = req.question;
  const options = { ...generationDefaults(deps.settings), ...checkGenerationOptions(req.options) };
  if (req.image !== undefined && req.images !== undefined) throw new RequestError('params', 'give one of image and images, not both');
  const sources = req.images ?? [req.image];
  if (!Array.isArray(sources)) throw new RequestError('params', 'images must be an array');
  const images: ImageInput[] = [];
  for (const src of sources) images.push((await resolveImage(src, deps.guard)).input);

  let committed = '';
  const onEvent = (e: GenerationEvent): void => {
    if (e.kind === 'block') {
      committed = e.text;
      onPartial?.({ kind: 'block', block: e.block, text: e.text });
    } else {
      onPartial?.({ kind: 'step', block: e.block, step: e.step, text: committed, blockText: e.blockText });
    }
  };
  let queueMs = 0;
  const { value, loadMs } = await deps.queue.run(req.lane ?? 'interactive', signal, () => {
    queueMs = performance.now() - received;
    return deps.models.ask({ images, question, options }, { signal, steps: req.streamSteps === true, onEvent });
  });
  if (value.source === 'local') deps.models.noteDecoding(value.result.stats);
  return toResult(value, queueMs, loadMs);
}
