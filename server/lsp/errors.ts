import { ResponseError, type CancellationToken } from 'vscode-languageserver/node';
import { errorKind, type ErrorKind } from '../engine/errors';
import { ErrorCodes, type ErrorCodeName, type ErrorData } from '../protocol';

/** Failures only the sidecar itself can have: a malformed request, a path outside the workspace, a full queue. */
export type RequestErrorKind = 'params' | 'pathOutsideWorkspace' | 'queueFull';

export class RequestError extends Error {
  constructor(
    readonly kind: RequestErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

/** The one mapping from what went wrong to the protocol code the client sees. */
const CODE_OF_KIND: Record<ErrorKind | RequestErrorKind, ErrorCodeName> = {
  image: 'InvalidImage',
  options: 'InvalidOptions',
  prompt: 'InvalidParams',
  model: 'ModelUnavailable',
  unsupportedCheckpoint: 'UnsupportedModel',
  download: 'DownloadFailed',
  diskFull: 'DiskFull',
  conversion: 'ConversionFailed',
  cancelled: 'RequestCancelled',
  remote: 'RemoteUnavailable',
  params: 'InvalidParams',
  pathOutsideWorkspace: 'PathOutsideWorkspace',
  queueFull: 'QueueFull',
};

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The code an error will be reported with (InternalError for anything raised without a kind). */
export function codeOf(err: unknown): ErrorCodeName {
  const kind = err instanceof RequestError ? err.kind : errorKind(err);
  return kind ? CODE_OF_KIND[kind] : 'InternalError';
}

/**
 * Every request handler's failures go through here, and only here, on their way to the client: the error's kind picks
 * the code; a cancelled token always reports RequestCancelled; anything raised without a kind is an InternalError
 * carrying its message.
 */
export function toResponseError(err: unknown, token?: CancellationToken): ResponseError<ErrorData> {
  if (err instanceof ResponseError) return err as ResponseError<ErrorData>;
  const kind = err instanceof RequestError ? err.kind : errorKind(err);
  const code: ErrorCodeName = token?.isCancellationRequested ? 'RequestCancelled' : kind ? CODE_OF_KIND[kind] : 'InternalError';
  const text = code === 'RequestCancelled' ? 'request cancelled' : message(err);
  const data: ErrorData = kind && kind in CODE_OF_KIND && !isRequestKind(kind) ? { code, kind: kind as ErrorKind } : { code };
  return new ResponseError<ErrorData>(ErrorCodes[code], text, data);
}

function isRequestKind(kind: string): kind is RequestErrorKind {
  return kind === 'params' || kind === 'pathOutsideWorkspace' || kind === 'queueFull';
}
