import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { INT4, linear, type Int4Config, type LayerContext } from '../../../server/converter/layers';
import { GraphBuilder } from '../../../server/onnx/graphBuilder';
import { sessionOptions } from './timing';

export interface MicroJob {
  dir: string;
  /** The linear's output and input widths (Hugging Face [N, K]). */
  n: number;
  k: number;
  rows: number[];
  threads: number;
  repeats: number;
  /**
   * Sessions round-robined, each with its own copy of the weights, so that no run finds them in the CPU's cache
   * (a real forward streams GBs of weights). Default: enough copies for 128 MiB.
   */
  copies?: number;
  /** A layout other than the converter's, and extra session config entries (lever comparisons). */
  int4?: Int4Config;
  config?: Record<string, string>;
}

export interface MicroResult {
  n: number;
  k: number;
  /** Per M: the best ms of one run (noise only adds time) and the rate it reaches in GFLOP/s (2·M·N·K per run). */
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
  const int4 = job.int4 ?? INT4;
  const file = join(job.dir, `linear-${job.n}x${job.k}-b${int4.blockSize}${int4.symmetric ? 's' : 'a'}${int4.accuracyLevel}.onnx`);
  const g = new GraphBuilder('matmulnbits_micro', file);
  const ctx: LayerContext = { g, precision: 'int4', compute: 'float32', int4 };
  const w = new Float32Array(job.n * job.k);
  for (let i = 0; i < w.length; i++) w[i] = (((Math.imul(i, 2654435761) >>> 0) / 4294967296) - 0.5) * 0.05;
  const x = g.input('x', 'float32', [1, 'M', job.k]);
  g.output(linear(ctx, x, 'w', w, job.n, job.k), 'y', 'float32', [1, 'M', job.n]);
  const weightBytes = g.weightBytes;
  g.save('MatMulNBits micro-benchmark');
  const options = sessionOptions(job.threads);
  if (job.config) options.extra = { session: job.config };
  const sessions: ort.InferenceSession[] = [];
  const byRows: MicroResult['byRows'] = [];
  try {
    const copies = job.copies ?? Math.min(8, Math.max(2, Math.ceil(2 ** 27 / weightBytes)));
    for (let c = 0; c < copies; c++) sessions.push(await ort.InferenceSession.create(file, options));
    for (const m of job.rows) {
      const input = new Float32Array(m * job.k).fill(0.01);
      const feeds = { x: new ort.Tensor('float32', input, [1, m, job.k]) };
      for (const s of sessions) await s.run(feeds); // warm-up (first-run allocations)
      const times: number[] = [];
      for (let r = 0; r < job.repeats; r++) {
        for (const s of sessions) {
          const t0 = performance.now();
          await s.run(feeds);
          times.push(performance.now() - t0);
        }
      }
      const ms = Math.min(...times);
      byRows.push({ m, ms, gflops: (2 * m * job.n * job.k) / (ms * 1e6) });
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return { n: job.n, k: job.k, byRows, weightBytes };
}
