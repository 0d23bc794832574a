import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import {
  CancelledError,
  DiffusionVLError,
  InputError,
  type AskRequest,
  type Engine,
  type EngineInfo,
  type EngineOptions,
  type GenerateIdsRequest,
  type GenerationResult,
  type RunControls,
} from './api';
import { readManifest } from './manifest';
import type { FromWorker, SerializedError, ToWorker, WorkerData } from './workerProtocol';

/**
 * Starts an engine: a worker thread that owns the ONNX sessions. Runs are queued and executed one at a time; each
 * can be cancelled through its AbortSignal (the promise rejects at once with CancelledError, the worker stops
 * within one denoising step and the engine stays usable).
 */
export async function createEngine(opts: EngineOptions): Promise<Engine> {
  const modelDir = resolve(opts.modelDir);
  readManifest(modelDir); // fail early, on the caller's thread, with the manifest's own message
  const workerFile = join(__dirname, 'engineWorker.js');
  if (!existsSync(workerFile)) throw new Error(`engine worker not found at ${workerFile}; run the build`);
  const cancelFlag = new SharedArrayBuffer(4);
  const data: WorkerData = { options: { ...opts, modelDir }, cancelFlag };
  // One environment for all threads: native libraries record there which build this process loaded (llama.cpp).
  const worker = new Worker(workerFile, { workerData: data, env: SHARE_ENV });
  const info = await new Promise<EngineInfo>((ok, fail) => {
    const onMessage = (msg: FromWorker) => {
      if (msg.type === 'ready') ok(msg.info);
      else if (msg.type === 'initError') fail(toError(msg.error));
      else return;
      worker.off('message', onMessage);
      worker.off('error', fail);
    };
    worker.on('message', onMessage);
    worker.once('error', fail);
  }).catch(async (err: unknown) => {
    await terminateWithin(worker);
    throw err;
  });
  return new WorkerEngine(worker, info, new Int32Array(cancelFlag));
}

/** How long stopping a worker may take before its caller goes on without it. */
const TERMINATE_WAIT_MS = 10_000;

/**
 * Stops a worker. `terminate()` waits for the native call the thread is in to return; a library stuck in one must not
 * hold the sidecar (every later request waits on a model change): after the wait the thread is left behind,
 * unreferenced, and said so on stderr (the sidecar's log).
 */
async function terminateWithin(worker: Worker, ms = TERMINATE_WAIT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<boolean>((ok) => {
    timer = setTimeout(() => ok(true), ms);
  });
  const stuck = await Promise.race([worker.terminate().then(() => false, () => false), gaveUp]);
  clearTimeout(timer);
  if (stuck) {
    worker.unref();
    process.stderr.write(`engine worker ${worker.threadId} did not stop within ${ms / 1000} s (inside a native call); left behind\n`);
  }
}

interface Pending {
  resolve(r: GenerationResult): void;
  reject(e: Error): void;
  controls: RunControls;
  /** Settled by the worker's reply, whatever the caller saw (the next run waits for it). */
  finished: () => void;
  settled: boolean;
}

class WorkerEngine implements Engine {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  /** Serialises runs: a run starts in the worker only after the previous one replied. */
  private tail: Promise<void> = Promise.resolve();
  private dead?: Error;
  private disposed = false;

  constructor(
    private worker: Worker,
    readonly info: EngineInfo,
    private cancelFlag: Int32Array,
  ) {
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`engine worker exited (code ${code})`)));
  }

  ask(req: AskRequest, controls: RunControls = {}): Promise<GenerationResult> {
    return this.submit('ask', req, controls);
  }

  generateIds(req: GenerateIdsRequest, controls: RunControls = {}): Promise<GenerationResult> {
    return this.submit('generateIds', req, controls);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.dead) {
      const done = new Promise<void>((ok) => {
        const onMsg = (msg: FromWorker) => msg.type === 'disposed' && ok();
        this.worker.on('message', onMsg);
        this.worker.once('exit', () => ok());
        setTimeout(ok, 5000).unref();
      });
      this.worker.postMessage({ type: 'dispose' } satisfies ToWorker);
      await done;
    }
    await terminateWithin(this.worker);
  }

  private submit(method: 'ask' | 'generateIds', req: AskRequest | GenerateIdsRequest, controls: RunControls): Promise<GenerationResult> {
    if (this.disposed) return Promise.reject(new Error('engine disposed'));
    if (this.dead) return Promise.reject(this.dead);
    const signal = controls.signal;
    if (signal?.aborted) return Promise.reject(new CancelledError());
    const id = this.nextId++;
    return new Promise<GenerationResult>((resolve, reject) => {
      let finished!: () => void;
      const workerDone = new Promise<void>((ok) => (finished = ok));
      const p: Pending = { resolve, reject, controls, finished, settled: false };
      const onAbort = () => {
        if (p.settled) return;
        p.settled = true;
        Atomics.store(this.cancelFlag, 0, id);
        reject(new CancelledError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const start = this.tail.then(() => {
        if (p.settled || this.dead) {
          // Cancelled (or engine died) while queued: never reaches the worker.
          if (!p.settled) reject(this.dead!);
          finished();
          return;
        }
        this.pending.set(id, p);
        const msg = { type: 'run', id, method, req, steps: !!controls.steps } as ToWorker;
        this.worker.postMessage(msg);
      });
      this.tail = start.then(() => workerDone).finally(() => signal?.removeEventListener('abort', onAbort));
    });
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type !== 'event' && msg.type !== 'result' && msg.type !== 'error') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'event') {
      if (!p.settled) p.controls.onEvent?.(msg.event);
      return;
    }
    this.pending.delete(msg.id);
    if (!p.settled) {
      p.settled = true;
      if (msg.type === 'result') p.resolve(msg.result);
      else p.reject(toError(msg.error));
    }
    p.finished();
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = this.disposed ? new Error('engine disposed') : err;
    for (const [, p] of this.pending) {
      if (!p.settled) {
        p.settled = true;
        p.reject(this.dead);
      }
      p.finished();
    }
    this.pending.clear();
  }
}

function toError(e: SerializedError): Error {
  if (e.kind === 'cancelled') return new CancelledError();
  const err = e.kind === 'image' || e.kind === 'options' || e.kind === 'prompt' ? new InputError(e.message, e.kind) : e.kind ? new DiffusionVLError(e.kind, e.message) : new Error(e.message);
  if (!e.kind && e.name !== 'Error') err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}
