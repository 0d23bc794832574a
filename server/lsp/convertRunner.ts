import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import { CancelledError } from '../engine/api';
import { DiffusionVLError, errorKind } from '../engine/errors';
import { convertCheckpoint, type ConvertProgress } from '../converter/convert';
import type { ConvertJob, ConvertMessage } from './convertWorker';

/** Any failure of the conversion is a `conversion` error unless it was raised with a kind of its own (an unsupported
 * checkpoint, a full disk — convertCheckpoint says so itself —, cancellation). */
function asConversionError(err: unknown): Error {
  if (errorKind(err)) return err as Error;
  return new DiffusionVLError('conversion', `conversion failed: ${err instanceof Error ? err.message : String(err)}`);
}

/**
 * Converts a checkpoint in a worker thread when the worker script is next to this file (tsc output, or a bundle that
 * ships convertWorker.js); cancelling terminates the worker. Without the script it converts in-process, where
 * cancellation only takes effect once the conversion returns.
 */
export async function runConversion(job: ConvertJob, onProgress: (p: ConvertProgress) => void, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw new CancelledError();
  try {
    await convertIn(job, onProgress, signal);
  } catch (err) {
    throw asConversionError(err);
  }
}

async function convertIn(job: ConvertJob, onProgress: (p: ConvertProgress) => void, signal: AbortSignal): Promise<void> {
  const script = join(__dirname, 'convertWorker.js');
  if (!existsSync(script)) {
    await convertCheckpoint(job.checkpointDir, job.outDir, { precision: job.precision, decoder: job.decoder, ggufType: job.ggufType, onProgress });
    if (signal.aborted) throw new CancelledError();
    return;
  }
  // The quantiser loads llama.cpp: the same build as the rest of the process (see llamacpp/library.ts).
  const worker = new Worker(script, { workerData: { convertJob: job }, env: SHARE_ENV });
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new CancelledError());
      signal.addEventListener('abort', onAbort, { once: true });
      worker.on('message', (m: ConvertMessage) => {
        if (m.type === 'progress') onProgress(m.progress);
        else if (m.type === 'done') resolve();
        else reject(m.kind ? new DiffusionVLError(m.kind, m.message) : new Error(m.message));
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`conversion worker exited early (code ${code})`)));
    });
  } catch (err) {
    await worker.terminate();
    // The converter's own cleanup never ran in a terminated worker.
    if (err instanceof CancelledError) await rm(`${job.outDir}.partial`, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
  await worker.terminate();
}
