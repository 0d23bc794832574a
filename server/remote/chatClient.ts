import { CancelledError, DiffusionVLError, type GenerationOptions } from '../engine/api';
import type { AskStats } from '../protocol';
import { sseData } from './sse';

/** No byte from the server for this long (headers or the next chunk): it is treated as gone. */
const IDLE_TIMEOUT_MS = 120_000;

export interface ChatQuestion {
  /** The images as `data:` URLs, in prompt order (none for a text-only question). */
  imageUrls: string[];
  question: string;
  options: GenerationOptions;
}

export interface ChatAnswer {
  text: string;
  /** The model the server says answered. */
  model: string;
  /** The DiffusionVL statistics `diffusionvl serve --http` sends along; absent from other servers. */
  stats?: AskStats;
}

/** What went wrong with the server (its status shows it): not reached or cut off, refused the key, or answered with an error. */
export type RemoteFailure = 'unreachable' | 'refused' | 'failed';

export class RemoteError extends DiffusionVLError {
  constructor(
    readonly failure: RemoteFailure,
    message: string,
  ) {
    super('remote', message);
    this.name = 'RemoteError';
  }
}

/** One model of `GET /v1/models`. */
interface ModelEntry {
  id: string;
  owned_by?: string;
}

/**
 * A client for one OpenAI-compatible server's chat-completions API (`POST /v1/chat/completions` with `stream: true`,
 * `GET /v1/models`). The API key goes only into the Authorization header: no message this class builds contains it.
 * Failures are DiffusionVLErrors of kind `remote` (unreachable, refused, broken stream) or `image` (the server
 * refused the image); a caller's abort is a CancelledError.
 */
export class ChatClient {
  /** The server's own model list, fetched once (the configured model, or the first listed one, is asked). */
  private models?: Promise<ModelEntry[]>;

  constructor(
    /** Base URL as the user set it: `http://host:port` or `http://host:port/v1`. */
    readonly url: string,
    private readonly apiKey: string | undefined,
    private readonly model: string,
  ) {}

  private endpoint(path: string): string {
    const base = this.url.replace(/\/+$/, '');
    return `${/\/v1$/.test(base) ? base : `${base}/v1`}/${path}`;
  }

  private headers(accept: 'application/json' | 'text/event-stream', withBody: boolean): Record<string, string> {
    const h: Record<string, string> = { accept };
    if (withBody) h['content-type'] = 'application/json';
    if (this.apiKey) h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  /** The model to ask and whether the server is a DiffusionVL server (which takes the DiffusionVL options). */
  async target(signal: AbortSignal): Promise<{ model: string; diffusionvl: boolean }> {
    this.models ??= this.fetchModels(signal).catch((err: unknown) => {
      this.models = undefined;
      throw err;
    });
    const list = await this.models;
    const entry = this.model ? list.find((m) => m.id === this.model) : list[0];
    if (this.model && !entry && list.length > 0) throw new RemoteError('failed', `${this.url} has no model "${this.model}" (it has ${list.map((m) => m.id).join(', ')}); change diffusionvl.server.model`);
    const model = this.model || entry?.id;
    if (!model) throw new RemoteError('failed', `${this.url} lists no models; set diffusionvl.server.model to the one to use`);
    return { model, diffusionvl: isDiffusionVL(entry) };
  }

  private async fetchModels(signal: AbortSignal): Promise<ModelEntry[]> {
    const res = await this.send(this.endpoint('models'), { method: 'GET', headers: this.headers('application/json', false) }, signal);
    // A server without a model list can still answer when a model is configured.
    if (res.status === 404 && this.model) return [];
    if (!res.ok) throw await httpError(this.url, res);
    const body = (await res.json().catch(() => undefined)) as { data?: unknown } | undefined;
    return Array.isArray(body?.data) ? body.data.filter((m): m is ModelEntry => typeof (m as ModelEntry)?.id === 'string') : [];
  }

  /** Asks one question, streaming: `onText` gets the answer so far after every chunk that adds text. */
  async ask(q: ChatQuestion, signal: AbortSignal, onText: (textSoFar: string) => void): Promise<ChatAnswer> {
    const { model, diffusionvl } = await this.target(signal);
    const o = q.options;
    const body: Record<string, unknown> = {
      model,
      messages: [{ role: 'user', content: [{ type: 'text', text: q.question }, ...q.imageUrls.map((url) => ({ type: 'image_url', image_url: { url } }))] }],
      stream: true,
      stream_options: { include_usage: true },
    };
    if (o.maxNewTokens !== undefined) body.max_tokens = o.maxNewTokens;
    if (o.temperature !== undefined) body.temperature = o.temperature;
    if (o.topP !== undefined) body.top_p = o.topP;
    if (o.seed !== undefined) body.seed = o.seed;
    if (diffusionvl) {
      // Options only a DiffusionVL server knows: another server could refuse a request carrying them.
      // Named as `diffusionvl serve --http` takes them (its `diffusionvl` extra field).
      const extra = { steps: o.steps, remasking: o.strategy, threshold: o.threshold, block_size: o.blockSize, top_k: o.topK };
      body.diffusionvl = Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined));
    }

    const idle = new IdleTimer(IDLE_TIMEOUT_MS);
    const both = AbortSignal.any([signal, idle.signal]);
    try {
      const res = await this.send(this.endpoint('chat/completions'), { method: 'POST', headers: this.headers('text/event-stream', true), body: JSON.stringify(body) }, both);
      idle.reset();
      if (!res.ok) throw await httpError(this.url, res);
      if (!res.body) throw new RemoteError('failed', `${this.url} answered without a body`);
      let text = '';
      let answeredBy = model;
      let stats: AskStats | undefined;
      let finished = false;
      for await (const data of sseData(res.body)) {
        idle.reset();
        if (data.trim() === '[DONE]') {
          finished = true;
          break;
        }
        let chunk: ChatChunk;
        try {
          chunk = JSON.parse(data) as ChatChunk;
        } catch {
          throw new RemoteError('failed', `${this.url} sent a stream event that is not JSON`);
        }
        if (chunk.error) throw new RemoteError('failed', `${this.url}: ${errorMessage(chunk.error)}`);
        if (typeof chunk.model === 'string' && chunk.model) answeredBy = chunk.model;
        stats = statsOf(chunk) ?? stats;
        const choice = chunk.choices?.[0];
        const delta = choice?.delta?.content;
        if (typeof delta === 'string' && delta !== '') {
          text += delta;
          onText(text);
        }
        if (choice?.finish_reason) finished = true;
      }
      if (!finished) throw new RemoteError('unreachable', `the connection to ${this.url} closed before the answer was finished`);
      return { text, model: answeredBy, stats };
    } catch (err) {
      if (signal.aborted) throw new CancelledError();
      if (idle.signal.aborted) throw new RemoteError('unreachable', `${this.url} sent nothing for ${IDLE_TIMEOUT_MS / 1000} s; giving up on this answer`);
      if (err instanceof DiffusionVLError) throw err;
      throw new RemoteError('unreachable', `lost the connection to ${this.url}: ${causeOf(err)}`);
    } finally {
      idle.stop();
    }
  }

  private async send(url: string, init: RequestInit, signal: AbortSignal): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal, redirect: 'error' });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new RemoteError('unreachable', `cannot reach ${this.url}: ${causeOf(err)}`);
    }
  }
}

interface ChatChunk {
  model?: unknown;
  choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[];
  error?: unknown;
  diffusionvl?: unknown;
}

function isDiffusionVL(m: ModelEntry | undefined): boolean {
  return !!m && (/diffusionvl/i.test(m.owned_by ?? '') || /diffusionvl/i.test(m.id));
}

/** The DiffusionVL statistics riding along on a chunk, if they have the shape the protocol's AskStats has. */
function statsOf(chunk: ChatChunk): AskStats | undefined {
  const ext = chunk.diffusionvl as { stats?: unknown } | undefined;
  const s = (ext?.stats ?? ext) as Partial<AskStats> | undefined;
  const n = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (!s || !n(s.generatedTokens) || !n(s.tokensPerForward) || !s.forwards || !n(s.forwards.total) || !s.timings || !n(s.timings.totalMs)) return undefined;
  return s as AskStats;
}

function errorMessage(e: unknown): string {
  const m = (e as { message?: unknown })?.message;
  return typeof m === 'string' ? m : JSON.stringify(e).slice(0, 300);
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/** An HTTP failure in words: the OpenAI error body's message when there is one, and what the status means here. */
async function httpError(url: string, res: Response): Promise<DiffusionVLError> {
  const raw = await res.text().catch(() => '');
  let detail = raw.slice(0, 300);
  let param: unknown;
  try {
    const body = JSON.parse(raw) as { error?: { message?: unknown; param?: unknown } };
    if (body.error) {
      detail = errorMessage(body.error);
      param = body.error.param;
    }
  } catch {
    // Not the OpenAI error shape: keep the start of the text.
  }
  const status = `HTTP ${res.status}`;
  if (res.status === 401 || res.status === 403) {
    return new RemoteError('refused', `${url} refused the API key (${status}${detail ? `: ${detail}` : ''}); set it with "DiffusionVL: Set Server API Key"`);
  }
  if (res.status === 429) {
    const after = res.headers.get('retry-after');
    return new RemoteError('failed', `${url} is busy (${status}); try again${after ? ` in ${after} s` : ' shortly'}`);
  }
  if ((res.status === 400 || res.status === 413 || res.status === 422) && (/image/i.test(String(param ?? '')) || /image/i.test(detail))) {
    return new DiffusionVLError('image', `${url} could not use the image (${status}): ${detail}`);
  }
  return new RemoteError('failed', `${url} answered ${status}${detail ? `: ${detail}` : ''}`);
}

/** Aborts its signal after `ms` without a reset. */
class IdleTimer {
  private readonly controller = new AbortController();
  private timer?: NodeJS.Timeout;
  readonly signal = this.controller.signal;

  constructor(private readonly ms: number) {
    this.reset();
  }

  reset(): void {
    this.stop();
    this.timer = setTimeout(() => this.controller.abort(), this.ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
