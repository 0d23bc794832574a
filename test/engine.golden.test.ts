import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Engine } from '../server/engine/api';
import { createEngine } from '../server/engine/engine';
import { caseImagePath, caseOptions, goldenCases } from './helpers/goldenCases';
import { ensureTinyModel } from './helpers/tinyModel';

// Every official generation case on the converted tiny model: identical ids with and without fused commit, and
// the official forward-call pattern (counts) when commits are not fused, one denoising state per pass (the verified
// multi-step strategy has its own golden suite).
let engine: Engine;

before(async () => {
  engine = await createEngine({ modelDir: await ensureTinyModel('fp32'), provider: 'cpu', threads: 1 });
});

after(async () => {
  await engine?.dispose();
});

for (const [name, c] of Object.entries(goldenCases())) {
  for (const fused of [false, true]) {
    test(`${name} (${fused ? 'fused commit' : 'unfused, official call pattern'})`, async () => {
      const images = caseImagePath(c).map((path) => ({ path }));
      // No prefix reuse here: each case must pay its own prefill for the counts to be comparable.
      const r = await engine.generateIds({ promptIds: c.prompt_ids, images, options: { ...caseOptions(c), fusedCommit: fused, prefixCache: false, verifySteps: 1 } });
      assert.deepEqual(r.outputIds, c.output_ids);
      assert.equal(r.outputIds.length, c.gen_kwargs.gen_length);
      const f = r.stats.forwards;
      if (!fused) {
        assert.deepEqual({ prefill: f.prefill, denoise: f.denoise, commit: f.commit }, c.forwards);
      } else {
        // Same prefill and denoising passes; every commit but the last rides along with the next block's first
        // pass, and the last one is not needed at all.
        assert.equal(f.prefill, c.forwards.prefill);
        assert.equal(f.denoise, c.forwards.denoise);
        assert.equal(f.commit, 0);
        assert.equal(f.fusedCommits, c.forwards.commit - 1);
      }
    });
  }
}
