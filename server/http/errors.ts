import type { ErrorKind } from '../engine/errors';
import { errorKind } from '../engine/errors';
import { message, RequestError, type RequestErrorKind } from '../lsp/errors';
import { RETRY_AFTER_S } from './limits';

/** OpenAI's error body: `{"error": {message, type, param, code}}`. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** A failure of the HTTP layer itself (auth, routing, body, request shape), with the status it is answered with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A request field that is wrong: 400 naming it, as OpenAI does. */
export function badParam(param: string, msg: string): HttpError {
  return new HttpError(400, msg, 'invalid_value', param);
}

interface Mapped {
  status: number;
  code: string;
}

/**
 * The one mapping from the project's error kinds (the engine's and the sidecar's) to HTTP: the compiler keeps it
 * complete. The LSP front end maps the same kinds to its codes in server/lsp/errors.ts.
 */
const HTTP_OF_KIND: Record<ErrorKind | RequestErrorKind, Mapped> = {
  image: { status: 422, code: 'invalid_image' },
  options: { status: 400, code: 'invalid_value' },
  prompt: { status: 400, code: 'invalid_prompt' },
  model: { status: 503, code: 'model_unavailable' },
  unsupportedCheckpoint: { status: 503, code: 'model_unavailable' },
  download: { status: 500, code: 'download_failed' },
  diskFull: { status: 507, code: 'disk_full' },
  conversion: { status: 500, code: 'conversion_failed' },
  cancelled: { status: 499, code: 'cancelled' },
  remote: { status: 502, code: 'upstream_unavailable' },
  params: { status: 400, code: 'invalid_value' },
  pathOutsideWorkspace: { status: 400, code: 'invalid_value' },
  queueFull: { status: 429, code: 'queue_full' },
};

function typeOf(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status < 500) return 'invalid_request_error';
  return 'server_error';
}

export interface ErrorReply {
  status: number;
  body: OpenAIErrorBody;
  headers: Record<string, string>;
}

/** Any failure as the status, headers and OpenAI-shaped body it is answered with. */
export function toErrorReply(err: unknown, param: string | null = null): ErrorReply {
  if (err instanceof HttpError) {
    return { status: err.status, headers: err.headers, body: { error: { message: err.message, type: typeOf(err.status), param: err.param, code: err.code } } };
  }
  const kind = err instanceof RequestError ? err.kind : errorKind(err);
  const mapped: Mapped = kind ? HTTP_OF_KIND[kind] : { status: 500, code: 'internal_error' };
  const headers: Record<string, string> = mapped.status === 429 ? { 'retry-after': String(RETRY_AFTER_S) } : {};
  const withParam = mapped.status === 400 || mapped.status === 422 ? param : null;
  return { status: mapped.status, headers, body: { error: { message: message(err), type: typeOf(mapped.status), param: withParam, code: mapped.code } } };
}
