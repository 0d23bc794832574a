import { parentPort, workerData } from 'node:worker_threads';
import type { GenerationEvent } from './api';
import { EngineCore } from './engineCore';
import { serializeError, type FromWorker, type ToWorker, type WorkerData } from './workerProtocol';

/** Worker-thread entry: ONNX Runtime's run() blocks its thread, so inference lives here, one run at a time. */
const port = parentPort;
if (!port) throw new Error('engineWorker must run in a worker thread');
const data = workerData as WorkerData;
const cancelFlag = new Int32Array(data.cancelFlag);
const post = (msg: FromWorker) => port.postMessage(msg);

let queue: Promise<void> = Promise.resolve();

EngineCore.create(data.options).then(
  (core) => {
    post({ type: 'ready', info: core.info });
    port.on('message', (msg: ToWorker) => {
      if (msg.type === 'dispose') {
        queue = queue.then(async () => {
          await core.dispose().catch(() => undefined);
          post({ type: 'disposed' });
        });
        return;
      }
      queue = queue.then(async () => {
        const ctx = {
          cancelled: () => Atomics.load(cancelFlag, 0) === msg.id,
          steps: msg.steps,
          emit: (event: GenerationEvent) => post({ type: 'event', id: msg.id, event }),
        };
        try {
          const result = msg.method === 'ask' ? await core.ask(msg.req, ctx) : await core.generateIds(msg.req, ctx);
          post({ type: 'result', id: msg.id, result });
        } catch (err) {
          post({ type: 'error', id: msg.id, error: serializeError(err) });
        }
      });
    });
  },
  (err: unknown) => post({ type: 'initError', error: serializeError(err) }),
);
