import { Methods, PROTOCOL_VERSION, type StatusResult } from '../protocol';
import type { ServerContext } from './context';
import { onRequest } from './handlers';

export function buildStatus(ctx: ServerContext): StatusResult {
  const mem = process.memoryUsage();
  return {
    protocolVersion: PROTOCOL_VERSION,
    ...ctx.models.status(),
    memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, externalBytes: mem.external },
    queue: ctx.queue.stats(),
    download: ctx.download,
  };
}

/**
 * Sends `diffusionvl/statusChanged` after changes, at most one per `intervalMs`: a request storm changes the queue
 * hundreds of times a second and the client only needs the latest picture.
 */
export class StatusNotifier {
  private timer?: NodeJS.Timeout;
  private enabled = false;

  constructor(
    private readonly send: () => void,
    private readonly intervalMs = 100,
  ) {}

  /** Called once the client is initialized; nothing is sent before. */
  enable(): void {
    this.enabled = true;
    this.schedule();
  }

  schedule(): void {
    if (!this.enabled || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, this.intervalMs);
  }

  dispose(): void {
    this.enabled = false;
    if (this.timer) clearTimeout(this.timer);
  }
}

export function registerStatus(ctx: ServerContext): void {
  onRequest(ctx.connection, Methods.status, () => buildStatus(ctx));
  onRequest(ctx.connection, Methods.unloadModel, async () => {
    await ctx.models.unload();
    return null;
  });
}
