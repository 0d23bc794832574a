import { errorKind, type ErrorKind } from './errors';
import type { AskRequest, EngineInfo, EngineOptions, GenerateIdsRequest, GenerationEvent, GenerationResult } from './api';

/** Messages between createEngine (main thread) and engineWorker (worker thread). */
export interface WorkerData {
  options: EngineOptions;
  /** Int32 slot 0: id of the run to cancel (the worker's loop is synchronous, so it polls this between steps). */
  cancelFlag: SharedArrayBuffer;
}

export type ToWorker =
  | { type: 'run'; id: number; method: 'ask'; req: AskRequest; steps: boolean }
  | { type: 'run'; id: number; method: 'generateIds'; req: GenerateIdsRequest; steps: boolean }
  | { type: 'dispose' };

export interface SerializedError {
  name: string;
  /** Set for errors that carry a kind; the main thread rebuilds the same kind. */
  kind?: ErrorKind;
  message: string;
  stack?: string;
}

export type FromWorker =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'initError'; error: SerializedError }
  | { type: 'event'; id: number; event: GenerationEvent }
  | { type: 'result'; id: number; result: GenerationResult }
  | { type: 'error'; id: number; error: SerializedError }
  | { type: 'disposed' };

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) return { name: err.name, kind: errorKind(err), message: err.message, stack: err.stack };
  return { name: 'Error', message: String(err) };
}
