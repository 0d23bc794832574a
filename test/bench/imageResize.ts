// Resize speed on the 1000×750 golden pattern: `npm run bench:image`. A benchmark, not a test (timings on shared
// machines are noisy); it prints the best of 5 per target size.
import { resizeBicubic, type RgbImage } from '../../server/engine/image';

function pattern1000x750(): RgbImage {
  const width = 1000;
  const height = 750;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0, o = 0; y < height; y++) {
    for (let x = 0; x < width; x++, o += 3) {
      data[o] = (x * x + y * 7) % 256;
      data[o + 1] = (x * 3 + y * y) % 256;
      data[o + 2] = ((x ^ y) * 5) % 256;
    }
  }
  return { width, height, data };
}

const src = pattern1000x750();
for (const [w, h] of [
  [1008, 756],
  [504, 364],
]) {
  resizeBicubic(src, w, h); // warm-up
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const start = process.hrtime.bigint();
    resizeBicubic(src, w, h);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  console.log(`resize 1000×750 → ${w}×${h}: ${best.toFixed(1)} ms (best of 5)`);
}
