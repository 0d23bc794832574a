/**
 * `node out/test/bench/real/visionAB.js <modelA> <modelB> <image> [--runs N] [--threads N]`: the vision graphs of two
 * converted models (say, before and after a converter change) on the same image, alternately in one process, so
 * that a busy moment on a shared machine hits both alike. Prints each run's ms and the faster-of-N ratio.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { visionFeeds } from '../../../server/engine/arch/qwenvl';
import { preprocessImage, preprocessOptionsFor } from '../../../server/engine/arch/qwenvl/preprocess';
import { asQwenVL, readManifest } from '../../../server/engine/manifest';
import { sessionOptions } from './timing';

async function main(): Promise<void> {
  const [a, b, image] = process.argv.slice(2);
  const argv = process.argv;
  const runs = argv.includes('--runs') ? Number(argv[argv.indexOf('--runs') + 1]) : 2;
  const threads = argv.includes('--threads') ? Number(argv[argv.indexOf('--threads') + 1]) : availableParallelism();
  const models = [a, b].map((dir) => ({ dir, m: asQwenVL(readManifest(dir)) }));
  const sessions = await Promise.all(models.map(({ dir, m }) => ort.InferenceSession.create(join(dir, m.files.vision), sessionOptions(threads))));
  const m = models[0].m;
  const pre = await preprocessImage({ path: image }, preprocessOptionsFor(m.image, m.vision));
  const times: number[][] = [[], []];
  const outputs: Float32Array[] = [];
  for (let r = 0; r < runs; r++) {
    for (const [i, s] of sessions.entries()) {
      const feeds = visionFeeds(s.inputNames, m.vision, pre.pixelValues, pre.gridThw);
      const t0 = performance.now();
      const out = await s.run(feeds);
      times[i].push(performance.now() - t0);
      outputs[i] = out.image_features.data as Float32Array;
      console.log(`run ${r + 1} ${i ? 'B' : 'A'}: ${times[i][r].toFixed(0)} ms`);
    }
  }
  let maxDiff = 0;
  for (let k = 0; k < outputs[0].length; k++) maxDiff = Math.max(maxDiff, Math.abs(outputs[0][k] - outputs[1][k]));
  const best = times.map((t) => Math.min(...t));
  console.log(`A ${a}\nB ${b}\ngrid ${pre.gridThw.join('×')}, ${threads} threads; best of ${runs}: A ${best[0].toFixed(0)} ms, B ${best[1].toFixed(0)} ms, A/B ${(best[0] / best[1]).toFixed(2)}×; max|A−B| of the features ${maxDiff.toExponential(2)}`);
  await Promise.all(sessions.map((s) => s.release()));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
