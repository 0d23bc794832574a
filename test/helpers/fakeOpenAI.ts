import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request the fake received, as it arrived. */
export interface SeenRequest {
  method: string;
  path: string;
  authorization?: string;
  body?: Record<string, unknown>;
}

export interface FakeOpenAIOptions {
  /** Model id `/v1/models` lists, and its `owned_by`. */
  model?: string;
  ownedBy?: string;
  /** Required Bearer key (401 in the OpenAI error shape otherwise). */
  apiKey?: string;
  /** The streamed answer, one SSE chunk per piece. */
  pieces?: string[];
  /** Pause between chunks, so that a client sees them arrive one by one. */
  chunkDelayMs?: number;
  /** Sent as `diffusionvl` on the last chunk (what a DiffusionVL server adds). */
  extra?: unknown;
  /** Port to listen on (0: any free one). */
  port?: number;
}

/**
 * Any OpenAI-compatible vision server, as far as the chat-completions wire format goes: `GET /v1/models` and
 * `POST /v1/chat/completions` with `stream: true` (SSE chunks, a final chunk with `finish_reason` and `usage`,
 * `[DONE]`). It keeps every request it received for the test to inspect. Loopback only.
 */
export class FakeOpenAI {
  readonly seen: SeenRequest[] = [];
  private server?: Server;
  port = 0;

  constructor(readonly opts: FakeOpenAIOptions = {}) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      void this.handle(req).then(
        async ({ status, json, sse }) => {
          if (sse) {
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
            for (const event of sse) {
              res.write(`data: ${event}\n\n`);
              if (this.opts.chunkDelayMs) await new Promise((r) => setTimeout(r, this.opts.chunkDelayMs));
            }
            res.end();
            return;
          }
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(json));
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: String(err), type: 'server_error' } }));
        },
      );
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(this.opts.port ?? this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening and drops open connections: the server is gone. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; json?: unknown; sse?: string[] }> {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const seen: SeenRequest = { method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization };
    if (raw) seen.body = JSON.parse(raw) as Record<string, unknown>;
    this.seen.push(seen);
    const model = this.opts.model ?? 'fake-vl';
    if (this.opts.apiKey && req.headers.authorization !== `Bearer ${this.opts.apiKey}`) {
      return { status: 401, json: { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' } } };
    }
    if (req.method === 'GET' && req.url === '/v1/models') {
      return { status: 200, json: { object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: this.opts.ownedBy ?? 'fake' }] } };
    }
    if (req.method === 'POST' && req.url === '/v1/chat/completions') {
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) return { status: 415, json: { error: { message: 'the body must be JSON', type: 'invalid_request_error' } } };
      const pieces = this.opts.pieces ?? ['A red ', 'circle ', 'above a blue square.'];
      const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 0, model };
      const events = pieces.map((p, i) => JSON.stringify({ ...base, choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: p } : { content: p }, finish_reason: null }] }));
      const last: Record<string, unknown> = { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: pieces.length, total_tokens: 10 + pieces.length } };
      if (this.opts.extra !== undefined) last.diffusionvl = this.opts.extra;
      return { status: 200, sse: [...events, JSON.stringify(last), '[DONE]'] };
    }
    return { status: 404, json: { error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' } } };
  }
}
