import { resolve } from 'node:path';
import { DEFAULT_PROVIDER, EXECUTION_PROVIDERS } from '../../engine/api';
import { defaultModelDir, isModelDir } from '../../engine/defaultModel';
import { createEngine } from '../../engine/engine';
import { ApiKey } from '../../http/auth';
import { BODY_TIMEOUT_MS, DEFAULT_MAX_QUEUE, HEADERS_TIMEOUT_MS } from '../../http/limits';
import { isLoopbackHost, startHttpServer } from '../../http/server';
import { intFlag, UsageError } from '../command';
import { backendFlag, backendHelp, providerFlag, threadsFlag, verifyStepsFlag } from './generate';

export const DEFAULT_HTTP_PORT = 8642;

export const serveHttpUsage = `Usage: diffusionvl serve --http [--host 127.0.0.1] [--port ${DEFAULT_HTTP_PORT}] [--model DIR] [--provider P] [--backend B] [--threads N]
                        [--verify-steps K] [--api-key-file F] [--cors-origin ORIGIN]... [--allow-image-urls] [--max-queue N]

Serves the OpenAI chat-completions API over HTTP (POST /v1/chat/completions, GET /v1/models, GET /health), answered
by one model on this machine. Images come as data: URLs in image_url parts. Logs (one line per request, never a key)
go to stderr.

Options:
  --host H               address to listen on (default 127.0.0.1); anything but loopback needs --api-key-file
  --port N               port (default ${DEFAULT_HTTP_PORT}; 0 = any free port, printed at start)
  --model DIR            converted model folder (default: models/default in the project)
  --provider P           ${EXECUTION_PROVIDERS.join('|')} (default ${DEFAULT_PROVIDER}; falls back to cpu with a reason)
${backendHelp}
  --threads N            ONNX Runtime intra-op threads
  --verify-steps K       denoising states per forward (auto or an integer; default auto)
  --api-key-file F       clients must send \`Authorization: Bearer <key>\`, the key being F's first line (16+ chars)
  --cors-origin ORIGIN   allow browser pages from ORIGIN (repeatable; default: no CORS)
  --allow-image-urls     also fetch http(s) image URLs (public addresses only, size and time limited)
  --max-queue N          requests waiting beyond the running one before 429 (default ${DEFAULT_MAX_QUEUE})
  --request-timeout S    seconds a client has to send its whole request (default ${BODY_TIMEOUT_MS / 1000}; headers: at most
                         ${HEADERS_TIMEOUT_MS / 1000}); slower clients get 408 and are disconnected`;

export interface HttpFlags {
  host?: string;
  port?: string;
  model?: string;
  provider?: string;
  backend?: string;
  threads?: string;
  'verify-steps'?: string;
  'api-key-file'?: string;
  'cors-origin'?: string[];
  'allow-image-urls'?: boolean;
  'max-queue'?: string;
  'request-timeout'?: string;
}

/** `serve --http`: runs until SIGINT/SIGTERM. */
export async function serveHttp(values: HttpFlags): Promise<number> {
  const modelDir = values.model ? resolve(values.model) : defaultModelDir();
  if (!isModelDir(modelDir)) {
    if (values.model) throw new UsageError(`${modelDir} is not a converted model folder (no manifest.json)`);
    throw new UsageError(`no model at ${modelDir}. Run \`npm run setup\` to create the default model, or pass --model <converted-dir>.`);
  }
  const host = values.host ?? '127.0.0.1';
  const port = intFlag(values.port, 'port', DEFAULT_HTTP_PORT);
  if (port < 0 || port > 65535) throw new UsageError(`--port must be in [0, 65535], got ${port}`);
  const maxQueue = intFlag(values['max-queue'], 'max-queue', DEFAULT_MAX_QUEUE);
  if (maxQueue < 0) throw new UsageError('--max-queue must be 0 or more');
  const requestTimeoutS = values['request-timeout'] === undefined ? BODY_TIMEOUT_MS / 1000 : Number(values['request-timeout']);
  if (!(requestTimeoutS > 0 && requestTimeoutS <= 3600)) throw new UsageError(`--request-timeout must be a number of seconds in (0, 3600], got "${values['request-timeout']}"`);
  let apiKey: ApiKey | undefined;
  if (values['api-key-file']) {
    try {
      apiKey = ApiKey.fromFile(values['api-key-file']);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (!isLoopbackHost(host) && !apiKey) throw new UsageError(`refusing to listen on ${host} without an API key: pass --api-key-file <file> (its first line is the key), or listen on 127.0.0.1`);
  for (const o of values['cors-origin'] ?? []) if (!/^https?:\/\/[^/]+$/.test(o)) throw new UsageError(`--cors-origin must be an origin such as http://localhost:3000, got "${o}"`);
  const log = (msg: string) => process.stderr.write(`diffusionvl serve: ${msg}\n`);
  console.log = (...args: unknown[]) => log(args.map(String).join(' '));
  console.info = console.log;
  const running = await startHttpServer({
    engineFactory: createEngine,
    settings: {
      modelPath: modelDir,
      executionProvider: providerFlag(values.provider),
      backend: backendFlag(values.backend),
      threads: threadsFlag(values.threads),
      verifySteps: verifyStepsFlag(values['verify-steps']),
    },
    host,
    port,
    apiKey,
    corsOrigins: values['cors-origin'],
    images: { allowRemote: values['allow-image-urls'] === true },
    maxQueue,
    requestTimeoutMs: requestTimeoutS * 1000,
    log,
  });
  // The one line a script waits for (the port matters with --port 0).
  process.stdout.write(`diffusionvl serve: listening on ${running.url} (model ${modelDir}${apiKey ? ', API key required' : ''})\n`);
  return new Promise<number>((done) => {
    const stop = () => void running.close().finally(() => done(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
