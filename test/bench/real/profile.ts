/**
 * `node out/test/bench/real/profile.js <modelDir> [--threads N] [--image png] [--past P]`: ONNX Runtime's own
 * profiler over one vision run, one prefill-sized decoder run, an 8-row and a 1-row forward. Prints where the time
 * goes per graph, by operator type (and the top nodes), from ORT's JSON traces.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddingTable } from '../../../server/engine/embeddings';
import { encodeQwenVL } from '../../../server/engine/arch/qwenvl';
import { preprocessImage, preprocessOptionsFor } from '../../../server/engine/arch/qwenvl/preprocess';
import { asQwenVL, readManifest } from '../../../server/engine/manifest';
import { blockCausal, open } from '../../../server/engine/attention';
import { OrtModel } from '../../../server/engine/backends/onnx/ortModel';
import { cacheAtDepth } from './pastCache';
import { range } from '../../../server/engine/rope';

interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; provider?: string };
}

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);

async function main(): Promise<void> {
  const dir = argv[0];
  const threads = Number(opt('threads', String(availableParallelism())));
  const m = asQwenVL(readManifest(dir));
  const emb = new EmbeddingTable(join(dir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
  const prefix = join(tmpdir(), `dvl-profile-${process.pid}`);
  const model = await OrtModel.load(dir, m, 'cpu', emb, { threads, extra: { enableProfiling: true, profileFilePrefix: prefix } });
  const h = m.text.hiddenSize;
  const phases: [string, () => Promise<unknown>][] = [];
  const image = opt('image', '');
  if (image) {
    const pre = await preprocessImage({ path: image }, preprocessOptionsFor(m.image, m.vision));
    phases.push(['vision', () => encodeQwenVL(model, m.vision, pre.pixelValues, pre.gridThw)]);
  }
  const past = Number(opt('past', '344'));
  const prompt = new Float32Array(past * h);
  for (let r = 0; r < past; r++) emb.copyRow(r + 1000, prompt, r * h);
  phases.push(['prefill', () => model.decode(prompt, range(0, past), blockCausal(m.blockSize), model.createCache(past), { commitRows: past, outputRows: [] })]);
  const block = new Float32Array(8 * h);
  for (let r = 0; r < 8; r++) emb.copyRow(m.tokens.mask, block, r * h);
  const cache = await cacheAtDepth(model, m, past, block.subarray(0, h));
  for (const rows of [8, 1]) {
    phases.push([`${rows}-row forward`, async () => {
      const out = await model.decode(block.subarray(0, rows * h), range(past, past + rows), open(0, rows), cache, { commitRows: 0, outputRows: range(0, rows) });
      return model.head(out!, false);
    }]);
  }
  for (const [name, run] of phases) {
    const t0 = performance.now();
    await run();
    console.log(`${name}: ${(performance.now() - t0).toFixed(0)} ms (profiled)`);
  }
  model.endProfiling();
  await model.release();

  // One trace per session; node events carry the op type. Runs are in order, so split each trace per model_run.
  const files = readdirSync(tmpdir()).filter((f) => f.startsWith(`dvl-profile-${process.pid}-`) && f.endsWith('.json'));
  // Which phase each run of a session was, in call order.
  const runsOf: Record<string, string[]> = {
    vision: image ? ['vision'] : [],
    decoder: ['prefill', '8-row forward (decoder)', '1-row forward (decoder)'],
    lm_head: ['8-row forward (head)', '1-row forward (head)'],
  };
  for (const f of files.sort()) {
    const events = JSON.parse(readFileSync(join(tmpdir(), f), 'utf8')) as TraceEvent[];
    rmSync(join(tmpdir(), f));
    const graph = f.replace(`dvl-profile-${process.pid}-`, '').replace(/_\d.*$/, '');
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
    runs.forEach((run, i) => {
      const inRun = nodes.filter((e) => e.ts >= run.ts && e.ts <= run.ts + run.dur);
      report(runsOf[graph]?.[i] ?? `${graph} run ${i}`, run.dur, inRun);
    });
  }
}

function report(phase: string, runUs: number, nodes: TraceEvent[]): void {
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  for (const e of nodes) {
    const op = e.args?.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    const node = `${op} ${e.name.replace(/_kernel_time$/, '').replace(/\d+/g, '#')}`;
    byNode.set(node, (byNode.get(node) ?? 0) + e.dur);
  }
  const kernels = nodes.reduce((s, e) => s + e.dur, 0);
  console.log(`\n${phase}: ${(runUs / 1000).toFixed(0)} ms in run(), ${(kernels / 1000).toFixed(0)} ms in kernels`);
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 8)) {
    console.log(`  ${op.padEnd(28)} ${(us / 1000).toFixed(1).padStart(9)} ms  ${((100 * us) / kernels).toFixed(1).padStart(5)}%`);
  }
  console.log('  top nodes (layer numbers folded):');
  for (const [n, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 6)) console.log(`    ${n.slice(0, 64).padEnd(64)} ${(us / 1000).toFixed(1).padStart(9)} ms`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
