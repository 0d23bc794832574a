import { join } from 'node:path';
import { createEngine } from '../../../server/engine/engine';
import { startHttpServer, type RunningHttpServer } from '../../../server/http/server';
import { invariant, type FuzzTarget } from '../target';
import { repoRoot } from './repo';

/**
 * Input: the body of a request to the OpenAI-compatible HTTP server (the first byte picks the route), sent by
 * Node's own fetch to the real server in this process on loopback with the demo model. Every request must be
 * answered with a status below 500 (503 for a full queue excepted) and, when it fails, an OpenAI-shaped error.
 */
const ROUTES: [string, string][] = [['POST', '/v1/chat/completions'], ['POST', '/v1/chat/completions'], ['POST', '/v1/chat/completions'], ['GET', '/v1/models'], ['GET', '/health'], ['POST', '/v1/models']];
let server: RunningHttpServer;

export const target: FuzzTarget = {
  maxLength: 8 * 1024,
  dictionary: [
    '"model"', '"messages"', '"role"', '"user"', '"system"', '"assistant"', '"content"', '"type"', '"text"', '"image_url"', '"url"',
    '"data:image/png;base64,iVBORw0KGgo="', '"http://127.0.0.1:9/x.png"', '"file:///etc/passwd"', '"stream"', '"max_tokens"',
    '"max_completion_tokens"', '"temperature"', '"stop"', '"n"', '"detail"', '"stream_options"', '"include_usage"', 'true', 'null', '[]', '{}',
  ],
  async setup() {
    server = await startHttpServer({
      engineFactory: createEngine,
      settings: { modelPath: join(repoRoot, 'models', 'default'), executionProvider: 'cpu' },
      host: '127.0.0.1',
      port: 0,
      log: () => {},
    });
  },
  async fuzz(data) {
    if (data.length === 0) return;
    const [method, path] = ROUTES[data[0] % ROUTES.length];
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: method === 'POST' ? data.subarray(1) : undefined,
    });
    const text = await res.text();
    invariant(res.status < 500 || res.status === 503, `${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    if (res.status >= 400) {
      let body: { error?: { message?: unknown; type?: unknown } } | undefined;
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        body = undefined;
      }
      invariant(typeof body?.error?.message === 'string' && typeof body.error.type === 'string', `${res.status} without an OpenAI error body: ${text.slice(0, 200)}`);
    }
  },
  async teardown() {
    await server.close();
  },
};
