/** The SigLIP variant's anyres arithmetic on the inference spec's worked numbers (official integer/float quirks). */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { downscaleSize, pyFloorDiv, resizeAndPadGeometry, selectBestResolution, unpadGeometry } from '../server/engine/arch/siglip/anyres';
import { bilinearResize } from '../server/engine/arch/siglip/assemble';
import { Xoshiro128 } from '../server/engine/rng';
import { rawSoftmaxProb, sampleRow } from '../server/engine/sampling';

const PINPOINTS: [number, number][] = [];
for (let i = 1; i <= 6; i++) for (let j = 1; j <= 6; j++) PINPOINTS.push([384 * i, 384 * j]);

// W×H → best (w×h), resized size @ paste, grid rows×cols, map after unpad, final map, image tokens (spec §3.5).
const WORKED: [number, number, [number, number], [number, number, number, number], [number, number], [number, number], [number, number], number][] = [
  [640, 480, [768, 768], [768, 576, 0, 96], [2, 2], [40, 54], [40, 54], 2929],
  [1024, 768, [1152, 768], [1024, 768, 64, 0], [2, 3], [54, 73], [46, 62], 3627],
  [800, 600, [1152, 768], [1024, 768, 64, 0], [2, 3], [54, 73], [46, 62], 3627],
  [1280, 720, [1536, 768], [1366, 768, 85, 0], [2, 4], [54, 96], [40, 72], 3649],
  [1920, 1080, [1920, 1152], [1920, 1080, 0, 36], [3, 5], [75, 135], [40, 72], 3649],
  [2000, 500, [2304, 768], [2304, 576, 0, 96], [2, 6], [40, 162], [26, 108], 3563],
  [4032, 3024, [2304, 1920], [2304, 1728, 0, 96], [5, 6], [121, 162], [46, 62], 3627],
  [384, 384, [384, 384], [384, 384, 0, 0], [1, 1], [27, 27], [27, 27], 1485],
  [200, 200, [384, 384], [384, 384, 0, 0], [1, 1], [27, 27], [27, 27], 1485],
  [336, 336, [384, 384], [384, 384, 0, 0], [1, 1], [27, 27], [27, 27], 1485],
];

test('select_best_resolution, resize-and-pad, unpad and the anyres_max_4 reduction on the worked examples', () => {
  for (const [W, H, best, resized, grid, unpadded, final, tokens] of WORKED) {
    const label = `${W}×${H}`;
    const [tw, th] = selectBestResolution(W, H, PINPOINTS);
    assert.deepEqual([tw, th], best, `${label}: best resolution`);
    const g = resizeAndPadGeometry(W, H, tw, th);
    assert.deepEqual([g.width, g.height, g.x, g.y], resized, `${label}: resize and paste`);
    const rows = th / 384;
    const cols = tw / 384;
    assert.deepEqual([rows, cols], grid, `${label}: grid`);
    const u = unpadGeometry(W, H, rows * 27, cols * 27);
    assert.deepEqual([u.height, u.width], unpadded, `${label}: unpadded map`);
    const d = downscaleSize(u.height, u.width, 4, 27);
    assert.deepEqual([d.height, d.width], final, `${label}: final map`);
    assert.equal(729 + d.height * (d.width + 1), tokens, `${label}: image tokens`);
  }
});

test('unpad keeps one extra row/column when c − new is odd (1024×768 keeps 73 columns for new_w 72)', () => {
  const u = unpadGeometry(1024, 768, 54, 81);
  assert.equal(u.axis, 'cols');
  assert.equal(u.newSize, 72);
  assert.equal(u.width, 73);
});

test("Python's float floor division, not floor(a/b)", () => {
  assert.equal(pyFloorDiv(30, 1.1111111111111112), 26);
  assert.equal(Math.floor(30 / 1.1111111111111112), 27);
  // 585×1927: map 162×50 → 97×29 (floor(a/b) would give 97×30).
  const d = downscaleSize(162, 50, 4, 27);
  assert.deepEqual([d.height, d.width], [97, 29]);
});

test('bilinear down-scale as PyTorch (align_corners=False): edge clamp, half-pixel centres, exact on constants and ramps', () => {
  const h = 54;
  const w = 73;
  const src = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) src[y * w + x] = x;
  const out = bilinearResize(src, h, w, 1, 46, 62);
  // Column 0: source max(0, 1.1774193·0.5 − 0.5) = 0.0887097.
  assert.ok(Math.abs(out[0] - 0.08870971202850342) < 1e-6, String(out[0]));
  assert.ok(Math.abs(out[1] - 1.2661290168762207) < 1e-5, String(out[1]));
  const flat = bilinearResize(new Float32Array(h * w).fill(3.25), h, w, 1, 46, 62);
  assert.ok(flat.every((v) => v === 3.25));
});

test('sampling confidence of the Qwen code: softmax of the raw logits, not of the filtered distribution', () => {
  const logits = Float32Array.of(2, 1, 0);
  const rng = new Xoshiro128(1);
  const pick = sampleRow(logits, { temperature: 1, topK: 1, topP: 1 }, rng);
  assert.equal(pick.id, 0);
  assert.equal(pick.prob, 1);
  assert.equal(rawSoftmaxProb(logits, 0), Math.fround(Math.exp(2) / (Math.exp(2) + Math.exp(1) + 1)));
});
