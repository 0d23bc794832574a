// Worker-thread entry: converts one checkpoint off the server's main thread, so the message loop stays responsive
// during the minutes a full-size conversion takes. Messages: {type:'progress'|'done'|'error'}.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { convertCheckpoint, type ConvertProgress } from '../converter/convert';
import { errorKind, type ErrorKind } from '../engine/errors';
import type { DecoderKind, GgufType, Precision } from '../protocol';

export interface ConvertJob {
  checkpointDir: string;
  outDir: string;
  precision: Precision;
  decoder?: DecoderKind;
  ggufType?: GgufType;
}

export type ConvertMessage = { type: 'progress'; progress: ConvertProgress } | { type: 'done' } | { type: 'error'; message: string; kind?: ErrorKind };

if (!isMainThread && parentPort && (workerData as { convertJob?: ConvertJob } | undefined)?.convertJob) {
  const port = parentPort;
  const job = (workerData as { convertJob: ConvertJob }).convertJob;
  const post = (m: ConvertMessage): void => port.postMessage(m);
  convertCheckpoint(job.checkpointDir, job.outDir, { precision: job.precision, decoder: job.decoder, ggufType: job.ggufType, onProgress: (progress) => post({ type: 'progress', progress }) }).then(
    () => post({ type: 'done' }),
    (err: unknown) => {
      // The error crosses to the main thread as text and kind (a full disk is already `diskFull`: convertCheckpoint).
      post({ type: 'error', message: err instanceof Error ? err.message : String(err), kind: errorKind(err) });
    },
  );
}
