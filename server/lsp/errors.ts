import { ResponseError, type CancellationToken } from 'vscode-languageserver/node';
import { CancelledError, InputError } from '../engine/api';
import { ErrorCodes, type ErrorData } from '../protocol';
import { QueueFullError } from './queue';

export type ErrorKind = ErrorData['kind'];

/** A failure the client should see as-is: a JSON-RPC error with one of the protocol's codes. */
export function rpcError(kind: ErrorKind, message: string): ResponseError<ErrorData> {
  return new ResponseError<ErrorData>(ErrorCodes[kind], message, { kind });
}

export function cancelled(): ResponseError<ErrorData> {
  return rpcError('RequestCancelled', 'request cancelled');
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps failures to the client-facing errors; anything unexpected becomes InternalError with its message. */
export function toResponseError(err: unknown, token?: CancellationToken): ResponseError<unknown> {
  if (err instanceof CancelledError || token?.isCancellationRequested) return cancelled();
  if (err instanceof InputError) return rpcError('InvalidImage', err.message);
  if (err instanceof QueueFullError) return rpcError('QueueFull', err.message);
  if (err instanceof ResponseError) return err;
  return rpcError('InternalError', err instanceof Error ? err.message : String(err));
}

