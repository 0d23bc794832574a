/**
 * `node out/test/bench/real/spinAB.js <modelDir> [--repeats N] [--threads N]`: the 8-row and 1-row forwards of one
 * converted model under two session settings — ONNX Runtime's default (intra-op threads spin while waiting for
 * work) and spinning off — loaded side by side and run alternately.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { EmbeddingTable } from '../../../server/engine/embeddings';
import { readManifest } from '../../../server/engine/manifest';
import { open } from '../../../server/engine/attention';
import { HostKvCache } from '../../../server/engine/backends/onnx/hostKvCache';
import { OrtModel } from '../../../server/engine/backends/onnx/ortModel';
import { range } from '../../../server/engine/rope';
import { median } from './timing';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const argv = process.argv;
  const repeats = argv.includes('--repeats') ? Number(argv[argv.indexOf('--repeats') + 1]) : 3;
  const threads = argv.includes('--threads') ? Number(argv[argv.indexOf('--threads') + 1]) : availableParallelism();
  const m = readManifest(dir);
  const table = () => new EmbeddingTable(join(dir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
  const emb = table();
  const variants: [string, Record<string, string>][] = [
    ['spinning (ORT default)', {}],
    ['no spinning', { 'session.intra_op.allow_spinning': '0' }],
  ];
  const models = [];
  // Each model owns (and closes) its own embedding table.
  for (const [, config] of variants) models.push(await OrtModel.load(dir, m, 'cpu', table(), { threads, extra: { extra: { session: config } } }));
  const past = 351;
  const cache = new HostKvCache(m.text.numLayers, m.text.numKvHeads * m.text.headDim, m.kvDtype, past);
  cache.length = past; // the values do not change the work done
  const h = m.text.hiddenSize;
  const block = new Float32Array(8 * h);
  for (let r = 0; r < 8; r++) emb.copyRow(m.tokens.mask, block, r * h);
  const forward = async (model: OrtModel, rows: number) => {
    const t0 = performance.now();
    const out = await model.decode(block.subarray(0, rows * h), range(past, past + rows), open(0, rows), cache, { commitRows: 0, outputRows: range(0, rows) });
    await model.head(out!, false);
    return performance.now() - t0;
  };
  const t: number[][][] = variants.map(() => [[], []]);
  for (const model of models) await forward(model, 8);
  for (let r = 0; r < repeats; r++) {
    for (const [i, model] of models.entries()) {
      t[i][0].push(await forward(model, 8));
      t[i][1].push(await forward(model, 1));
    }
  }
  for (const [i, [name]] of variants.entries()) {
    console.log(`${name.padEnd(24)} 8-row ${median(t[i][0]).toFixed(0).padStart(6)} ms   1-row ${median(t[i][1]).toFixed(0).padStart(6)} ms   (medians of ${repeats}, ${threads} threads)`);
  }
  for (const model of models) await model.release();
  emb.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
