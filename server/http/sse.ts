import type { ServerResponse } from 'node:http';

/** Server-Sent Events as OpenAI streams them: `data: <json>` events, ended by `data: [DONE]`. */
export class SseWriter {
  private started = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, string>,
  ) {}

  /** Whether the status line went out (after which errors can only be sent as events). */
  get open(): boolean {
    return this.started;
  }

  send(data: unknown): void {
    this.start();
    this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    this.start();
    this.res.end('data: [DONE]\n\n');
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { ...this.headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    this.res.flushHeaders();
  }
}
