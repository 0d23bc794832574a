import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { linear, type LayerContext } from '../../../server/converter/layers';
import { GraphBuilder } from '../../../server/converter/onnx/graphBuilder';
import { median, sessionOptions } from './timing';

export interface MicroJob {
  dir: string;
  /** The linear's output and input widths (Hugging Face [N, K]). */
  n: number;
  k: number;
  rows: number[];
  threads: number;
  repeats: number;
}

export interface MicroResult {
  n: number;
  k: number;
  /** Per M: median ms of one run and the rate it reaches in GFLOP/s (2·M·N·K per run). */
  byRows: { m: number; ms: number; gflops: number }[];
  /** Bytes of packed weights + scales + zero points the kernel reads per run. */
  weightBytes: number;
}

/**
 * One int4 linear exactly as the converter writes it (same `linear()`, so any layout change applies here too), timed
 * at the row counts the phases run at: the int4 rate this machine can reach per M.
 */
export async function microbench(job: MicroJob): Promise<MicroResult> {
  mkdirSync(job.dir, { recursive: true });
  const file = join(job.dir, `linear-${job.n}x${job.k}.onnx`);
  const g = new GraphBuilder('matmulnbits_micro', file);
  const ctx: LayerContext = { g, precision: 'int4', compute: 'float32' };
  const w = new Float32Array(job.n * job.k);
  for (let i = 0; i < w.length; i++) w[i] = (((Math.imul(i, 2654435761) >>> 0) / 4294967296) - 0.5) * 0.05;
  const x = g.input('x', 'float32', [1, 'M', job.k]);
  g.output(linear(ctx, x, 'w', w, job.n, job.k), 'y', 'float32', [1, 'M', job.n]);
  const weightBytes = g.weightBytes;
  g.save('MatMulNBits micro-benchmark');
  const session = await ort.InferenceSession.create(file, sessionOptions(job.threads));
  const byRows: MicroResult['byRows'] = [];
  try {
    for (const m of job.rows) {
      const input = new Float32Array(m * job.k).fill(0.01);
      const feeds = { x: new ort.Tensor('float32', input, [1, m, job.k]) };
      await session.run(feeds); // warm-up (first-run allocations)
      const times: number[] = [];
      for (let r = 0; r < job.repeats; r++) {
        const t0 = performance.now();
        await session.run(feeds);
        times.push(performance.now() - t0);
      }
      const ms = median(times);
      byRows.push({ m, ms, gflops: (2 * m * job.n * job.k) / (ms * 1e6) });
    }
  } finally {
    await session.release();
  }
  return { n: job.n, k: job.k, byRows, weightBytes };
}
