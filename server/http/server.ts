import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, BlockList } from 'node:net';
import { basename } from 'node:path';
import type { SettingsUpdate } from '../protocol';
import type { EngineFactory } from '../lsp/modelLifecycle';
import { NoFilesGuard } from '../lsp/pathGuard';
import { createStandalone, type Standalone } from '../lsp/standalone';
import type { ApiKey } from './auth';
import { readJsonBody } from './body';
import { chatCompletions } from './chat';
import { HttpError, toErrorReply } from './errors';
import type { ImageUrlPolicy } from './imageUrl';
import { BODY_TIMEOUT_MS, DEFAULT_MAX_QUEUE, HEADERS_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEADER_BYTES } from './limits';

export interface HttpServerOptions {
  engineFactory: EngineFactory;
  /** Model folder, provider, threads (the sidecar's settings). */
  settings: SettingsUpdate;
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Required for any address but loopback. */
  apiKey?: ApiKey;
  /** Origins allowed to call from a browser (`--cors-origin`); none = no CORS headers at all. */
  corsOrigins?: string[];
  images?: ImageUrlPolicy;
  maxQueue?: number;
  maxBodyBytes?: number;
  /** The whole request (headers and body) must arrive within this (default BODY_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  log: (msg: string) => void;
}

export interface RunningHttpServer {
  server: Server;
  /** http://host:port */
  url: string;
  port: number;
  answering: Standalone;
  close(): Promise<void>;
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** Whether a host name or address is this machine's loopback interface. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && loopback.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** The host name of a Host header (`name:port`, `[v6]:port`). */
function hostOfHeader(header: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(header.trim());
  return m ? m[1] : header;
}

/**
 * The OpenAI-compatible HTTP front end: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`, answered on
 * the sidecar's path (one model, loaded on first use and freed when idle; one queue). Refuses to listen on anything
 * but loopback without an API key.
 */
export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  if (!isLoopbackHost(opts.host) && !opts.apiKey) {
    throw new Error(`refusing to listen on ${opts.host} without an API key: pass --api-key-file <file>, or listen on 127.0.0.1`);
  }
  const answering = createStandalone({
    engineFactory: opts.engineFactory,
    settings: opts.settings,
    // Requests carry image bytes only; no request can make the server open a file.
    guard: new NoFilesGuard(),
    log: (msg) => opts.log(msg),
    maxWaiting: opts.maxQueue ?? DEFAULT_MAX_QUEUE,
  });
  const modelId = (): string => basename(answering.models.modelDir() ?? 'none');
  const chat = { deps: answering.deps, modelId, images: opts.images ?? { allowRemote: false } };
  const cors = new Set(opts.corsOrigins ?? []);
  const maxBody = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  const requestTimeout = opts.requestTimeoutMs ?? BODY_TIMEOUT_MS;
  const headersTimeout = Math.min(HEADERS_TIMEOUT_MS, requestTimeout);

  const handle = async (req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> => {
    const headers: Record<string, string> = {};
    const origin = req.headers.origin;
    if (origin !== undefined && cors.has(origin)) {
      headers['access-control-allow-origin'] = origin;
      headers.vary = 'Origin';
    }
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'OPTIONS') {
        if (!headers['access-control-allow-origin']) throw new HttpError(405, 'cross-origin requests are not allowed (see --cors-origin)', 'cors_not_allowed');
        res.writeHead(204, { ...headers, 'access-control-allow-methods': 'GET, POST, OPTIONS', 'access-control-allow-headers': 'authorization, content-type', 'access-control-max-age': '600' });
        res.end();
        return;
      }
      // Without a key the server is on loopback; a Host naming anything else is a page that rebound its DNS name here.
      if (!opts.apiKey && !isLoopbackHost(hostOfHeader(req.headers.host ?? ''))) throw new HttpError(403, 'this server answers requests addressed to localhost only', 'host_not_allowed');
      opts.apiKey?.check(req.headers.authorization);
      const route = `${req.method} ${path}`;
      if (route === 'POST /v1/chat/completions') {
        const body = await readJsonBody(req, maxBody, requestTimeout);
        await chatCompletions(chat, body, res, headers, signal);
      } else if (route === 'GET /v1/models') {
        json(res, 200, headers, { object: 'list', data: [modelEntry(modelId())] });
      } else if (req.method === 'GET' && path.startsWith('/v1/models/')) {
        const id = decodeURIComponent(path.slice('/v1/models/'.length));
        if (id !== modelId()) throw new HttpError(404, `model ${JSON.stringify(id)} does not exist; this server serves "${modelId()}"`, 'model_not_found', 'model');
        json(res, 200, headers, modelEntry(id));
      } else if (route === 'GET /health') {
        const { model, provider } = answering.models.status();
        const ok = model.state !== 'error' && model.state !== 'none';
        json(res, ok ? 200 : 503, headers, { status: ok ? 'ok' : 'unavailable', model: { id: modelId(), ...model }, provider, queue: { ...answering.queue.stats(), maxWaiting: opts.maxQueue ?? DEFAULT_MAX_QUEUE } });
      } else if (['/v1/chat/completions', '/v1/models', '/health'].includes(path)) {
        throw new HttpError(405, `${req.method} is not allowed on ${path}`, 'method_not_allowed');
      } else throw new HttpError(404, `no route ${req.method} ${path}`, 'not_found');
    } catch (err) {
      if (res.headersSent || signal.aborted) {
        if (!res.writableEnded) res.destroy();
        return;
      }
      // Input errors raised on the answering path (image bytes, question) concern the messages.
      const reply = toErrorReply(err, path === '/v1/chat/completions' ? 'messages' : null);
      // A refused body may still be arriving: answer, then close rather than read the rest.
      const close = reply.status === 413 || reply.status === 408 || !req.complete;
      json(res, reply.status, { ...headers, ...reply.headers, ...(close ? { connection: 'close' } : {}) }, reply.body);
      if (reply.status >= 500 && reply.status !== 503) opts.log(`${req.method} ${path}: ${reply.body.error.message}`);
    }
  };

  const server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    requestTimeout,
    headersTimeout,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // How often node looks for requests past those timeouts (its default, 30 s, would let a slow client stay that long).
    connectionsCheckingInterval: Math.min(1000, headersTimeout),
  }, (req, res) => {
    const t0 = performance.now();
    const abort = new AbortController();
    // The client went away before its answer was complete: cancel its run (the engine stops within one step).
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
      opts.log(`${req.method} ${(req.url ?? '').split('?')[0]} ${res.writableFinished ? res.statusCode : 'disconnected'} ${Math.round(performance.now() - t0)} ms`);
    });
    void handle(req, res, abort.signal);
  });
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const shown = isIP(opts.host) === 6 ? `[${opts.host}]` : opts.host;
  return {
    server,
    url: `http://${shown}:${port}`,
    port,
    answering,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await answering.dispose();
    },
  };
}

function modelEntry(id: string): Record<string, unknown> {
  return { id, object: 'model', created: 0, owned_by: 'diffusionvl' };
}

function json(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}
