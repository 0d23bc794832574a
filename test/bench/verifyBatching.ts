import { join } from 'node:path';
import { open } from '../../server/engine/attention';
import { loadLlamaDecoder } from '../../server/engine/backends/decoderChoice';
import { OrtModel } from '../../server/engine/backends/onnx/ortModel';
import { defaultModelDir } from '../../server/engine/defaultModel';
import { EmbeddingTable } from '../../server/engine/embeddings';
import { blockCausal } from '../../server/engine/attention';
import type { KvCache } from '../../server/engine/kvCache';
import { readManifest } from '../../server/engine/manifest';
import { selectTransfers } from '../../server/engine/remasking';
import { Xoshiro128 } from '../../server/engine/rng';
import { range } from '../../server/engine/rope';
import { ensureTinyModel } from '../helpers/tinyModel';
import { ensureTinyLlamaModel } from '../helpers/tinyLlamaModel';
import { ensureTinySiglipModel } from '../helpers/tinySiglipModel';

/**
 * `npm run bench:verify`: does a denoising state give bit-identical logits when it is one of K states of a batched
 * (block-diagonal) pass as when it is alone? Verified multi-step decoding keeps a draft's outputs from the batched
 * pass, so where the logits differ a near-tie could choose another token or position than one state per pass would.
 *
 * For each model: random prompts are prefilled into the cache, then K states of one block (all masked, and states
 * with random positions unmasked to random tokens, as drafts are) run alone and together, each state in every group
 * slot. Reported per K: rows compared, rows whose logits are bit-identical, the largest |Δ|, and the flips: rows
 * whose arg-max id differs, and states whose static (one position) or dynamic (threshold 0.9) selection differs.
 * Also with the pending fused commit's rows in front (shared rows). ONNX Runtime (CPU provider) and llama.cpp (CPU),
 * one thread.
 */
const KS = [2, 4, 8];
const PROMPTS = Number(process.env.VERIFY_BENCH_PROMPTS ?? 4);

interface Tally {
  rows: number;
  identical: number;
  maxAbs: number;
  idFlips: number;
  states: number;
  staticFlips: number;
  dynamicFlips: number;
}

async function benchModel(label: string, dir: string, backend: 'onnx' | 'llama.cpp' = 'onnx'): Promise<void> {
  const m = readManifest(dir);
  const emb = new EmbeddingTable(join(dir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
  const { llama, reason } = await loadLlamaDecoder({ modelDir: dir, provider: 'cpu', threads: 1, backend }, m, emb);
  if ((llama ? 'llama.cpp' : 'onnx') !== backend) {
    console.log(`\n${label}: skipped (${reason})`);
    return;
  }
  const ort = await OrtModel.load(dir, m, 'cpu', emb, { threads: 1, textDecoder: !llama });
  const model = llama ?? ort;
  const h = model.hiddenSize;
  const B = m.blockSize;
  const v = m.text.vocabSize;
  const rng = new Xoshiro128(20261206);
  const randInt = (n: number) => Math.floor(rng.nextFloat() * n);
  const tallies = new Map<string, Tally>();
  try {
    for (let p = 0; p < PROMPTS; p++) {
      const cache: KvCache = model.createCache(256);
      const promptLen = 2 * B;
      const prompt = new Float32Array(promptLen * h);
      for (let r = 0; r < promptLen; r++) model.embedRow(randInt(Math.min(v, m.embeddings.rows)), prompt, r * h);
      // The first block is prefilled; the second is a finished block whose commit may ride along (shared rows).
      await model.decode(prompt.subarray(0, B * h), range(0, B), blockCausal(B), cache, { commitRows: B, outputRows: [] });
      const finished = prompt.subarray(B * h, 2 * B * h);
      for (const K of KS) {
        // State 0: all masked; state g: g·B/K positions unmasked (random positions, random tokens).
        const states = range(0, K).map((g) => {
          const embeds = new Float32Array(B * h);
          const masked = range(0, B).map(() => true);
          for (let r = 0; r < B; r++) model.embedRow(m.tokens.mask, embeds, r * h);
          const order = range(0, B).sort(() => rng.nextFloat() - 0.5);
          for (const r of order.slice(0, Math.floor((g * B) / K))) {
            masked[r] = false;
            model.embedRow(randInt(Math.min(v, m.embeddings.rows)), embeds, r * h);
          }
          return { embeds, masked, want: range(0, B).filter((r) => masked[r]) };
        });
        for (const shared of [0, B]) {
          const run = async (group: typeof states): Promise<Float32Array[]> => {
            const rows = shared + group.length * B;
            const embeds = new Float32Array(rows * h);
            if (shared) embeds.set(finished);
            group.forEach((st, g) => embeds.set(st.embeds, (shared + g * B) * h));
            // The block follows the cache (and the finished block when it is committed in this pass), as llama.cpp needs.
            const s0 = B + shared;
            const positions = (shared ? range(B, 2 * B) : []).concat(...group.map(() => range(s0, s0 + B)));
            const outputRows = group.flatMap((st, g) => st.want.map((r) => shared + g * B + r));
            const hidden = await model.decode(embeds, positions, open(shared, ...group.map(() => B)), cache, { commitRows: 0, outputRows });
            const logits = (await model.head(hidden!, true)).logits!;
            let at = 0;
            return group.map((st) => {
              const part = logits.slice(at * v, (at + st.want.length) * v);
              at += st.want.length;
              return part;
            });
          };
          const key = `K=${K}${shared ? ', after a fused commit' : ''}`;
          const t = tallies.get(key) ?? { rows: 0, identical: 0, maxAbs: 0, idFlips: 0, states: 0, staticFlips: 0, dynamicFlips: 0 };
          tallies.set(key, t);
          const together = await run(states);
          for (let g = 0; g < K; g++) {
            const [alone] = await run([states[g]]);
            compare(t, alone, together[g], states[g], v);
          }
          // Every state in every slot: rotate the order once.
          const rotated = states.slice(1).concat(states[0]);
          const again = await run(rotated);
          for (let g = 0; g < K; g++) {
            const [alone] = await run([rotated[g]]);
            compare(t, alone, again[g], rotated[g], v);
          }
        }
      }
      cache.dispose();
    }
  } finally {
    if (model !== ort) await model.release();
    await ort.release();
  }
  console.log(`\n${label}, ${reason} (${dir})`);
  console.log('| batch | rows | logits bit-identical | max abs diff | arg-max flips | static selection flips | dynamic selection flips |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const [key, t] of tallies) {
    console.log(`| ${key} | ${t.rows} | ${t.identical} | ${t.maxAbs.toExponential(2)} | ${t.idFlips} | ${t.staticFlips} / ${t.states} | ${t.dynamicFlips} / ${t.states} |`);
  }
}

/** Arg-max id and softmax probability per row (as the head computes them, first index on ties). */
function argmaxRows(logits: Float32Array, v: number): { ids: number[]; probs: number[] } {
  const ids: number[] = [];
  const probs: number[] = [];
  for (let r = 0; r < logits.length / v; r++) {
    const row = logits.subarray(r * v, (r + 1) * v);
    let best = 0;
    for (let i = 1; i < v; i++) if (row[i] > row[best]) best = i;
    let sum = 0;
    for (let i = 0; i < v; i++) sum += Math.exp(row[i] - row[best]);
    ids.push(best);
    probs.push(Math.fround(1 / sum));
  }
  return { ids, probs };
}

function compare(t: Tally, alone: Float32Array, batched: Float32Array, st: { masked: boolean[]; want: number[] }, v: number): void {
  const n = st.want.length;
  t.rows += n;
  t.states++;
  for (let r = 0; r < n; r++) {
    let same = true;
    for (let i = 0; i < v; i++) {
      const d = Math.abs(alone[r * v + i] - batched[r * v + i]);
      if (d !== 0 || Object.is(alone[r * v + i], -0) !== Object.is(batched[r * v + i], -0)) same = false;
      if (d > t.maxAbs) t.maxAbs = d;
    }
    if (same) t.identical++;
  }
  const a = argmaxRows(alone, v);
  const b = argmaxRows(batched, v);
  t.idFlips += a.ids.filter((id, i) => id !== b.ids[i]).length;
  const conf = (probs: number[]) => {
    const c = new Float64Array(st.masked.length).fill(-Infinity);
    st.want.forEach((r, k) => (c[r] = probs[k]));
    return c;
  };
  const sel = (probs: number[], strategy: 'static' | 'dynamic') => selectTransfers(conf(probs), st.masked, 1, strategy, 0.9).join(',');
  if (sel(a.probs, 'static') !== sel(b.probs, 'static')) t.staticFlips++;
  if (sel(a.probs, 'dynamic') !== sel(b.probs, 'dynamic')) t.dynamicFlips++;
}

async function main(): Promise<void> {
  console.log('Batched (K states, block-diagonal) against single-state denoising passes, CPU, 1 thread.');
  await benchModel('ONNX Runtime: tiny QwenVL (F32)', await ensureTinyModel('fp32'));
  await benchModel('ONNX Runtime: tiny SigLIP (F32)', await ensureTinySiglipModel('fp32'));
  await benchModel('ONNX Runtime: trained default model', defaultModelDir());
  await benchModel('llama.cpp: tiny QwenVL (F32 GGUF)', await ensureTinyLlamaModel('qwenvl'), 'llama.cpp');
  await benchModel('llama.cpp: tiny SigLIP (F32 GGUF)', await ensureTinyLlamaModel('siglip'), 'llama.cpp');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
