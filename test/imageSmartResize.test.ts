import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../server/engine/api';
import { roundHalfEven, smartResize } from '../server/engine/arch/qwenvl/preprocess';

const MIN = 147456;
const MAX = 262144;
const grid = (w: number, h: number, min = MIN, max = MAX) => {
  const [rh, rw] = smartResize(h, w, 28, min, max);
  return [1, rh / 14, rw / 14];
};

test('roundHalfEven matches Python round()', () => {
  assert.equal(roundHalfEven(70 / 28), 2); // 2.5 → 2, where Math.round gives 3
  assert.equal(roundHalfEven(3.5), 4);
  assert.equal(roundHalfEven(0.5), 0);
  assert.equal(roundHalfEven(1.5), 2);
  assert.equal(roundHalfEven(2.4999999), 2);
  assert.equal(roundHalfEven(2.5000001), 3);
  assert.equal(roundHalfEven(7), 7);
});

test('smart_resize uses round-half-to-even (70 px → 56, not 84)', () => {
  // 70/28 = 2.5 → 2 → 56; the product stays inside wide bounds so no rescaling happens.
  assert.deepEqual(smartResize(70, 70, 28, 56 * 56, 1e7), [56, 56]);
  assert.deepEqual(smartResize(98, 70, 28, 1, 1e7), [112, 56]); // 3.5 → 4, 2.5 → 2
});

test('smart_resize reproduces the reference grids', () => {
  assert.deepEqual(grid(1024, 768), [1, 30, 42]);
  assert.deepEqual(grid(640, 480), [1, 30, 42]);
  assert.deepEqual(grid(2048, 1365), [1, 28, 44]);
  assert.deepEqual(grid(512, 512), [1, 36, 36]);
  assert.deepEqual(grid(300, 200), [1, 24, 34]);
  assert.deepEqual(grid(1000, 70), [1, 8, 104]);
  // Golden images.
  assert.deepEqual(grid(1000, 80), [1, 8, 98]);
  assert.deepEqual(grid(37, 29), [1, 26, 32]);
  assert.deepEqual(grid(120, 90), [1, 24, 32]);
  assert.deepEqual(grid(64, 48), [1, 24, 32]);
  assert.deepEqual(grid(37, 29, 3136, 1003520), [1, 4, 6]);
});

test('smart_resize stays within bounds and on the 28 grid', () => {
  for (const [w, h] of [
    [1, 1],
    [5000, 4000],
    [199 * 30, 30],
    [28, 28],
    [4096, 4096],
  ]) {
    const [rh, rw] = smartResize(h, w, 28, MIN, MAX);
    assert.equal(rh % 28, 0);
    assert.equal(rw % 28, 0);
    assert.ok(rh >= 28 && rw >= 28);
    assert.ok(rh * rw <= MAX || rh === 28 || rw === 28, `${w}×${h} → ${rw}×${rh}`);
  }
});

test('smart_resize rejects aspect ratios above 200 with InputError', () => {
  assert.throws(() => smartResize(4, 1000, 28, MIN, MAX), InputError);
  assert.throws(() => smartResize(1000, 4, 28, MIN, MAX), /aspect ratio/);
  assert.doesNotThrow(() => smartResize(5, 1000, 28, MIN, MAX)); // exactly 200 is allowed
});
