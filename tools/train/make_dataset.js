#!/usr/bin/env node
// Writes the synthetic training data with the project's TypeScript generator (run `npx tsc -p tsconfig.json` first).
// Usage: node tools/train/make_dataset.js OUT_DIR [--train-scenes N] [--seed S]
'use strict';
const { join } = require('node:path');
const { parseArgs } = require('node:util');
const { writeDataset } = require(join(__dirname, '..', '..', 'out', 'server', 'synthetic', 'dataset.js'));

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: 'string', default: '1' },
    'train-scenes': { type: 'string', default: '12000' },
    'val-items': { type: 'string', default: '600' },
    'test-items': { type: 'string', default: '1200' },
    pixels: { type: 'string', default: String(112 * 112) },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node tools/train/make_dataset.js OUT_DIR [--train-scenes N] [--seed S]');
  process.exit(2);
}
const t0 = Date.now();
writeDataset({
  outDir: positionals[0],
  seed: Number(values.seed),
  trainScenes: Number(values['train-scenes']),
  valItems: Number(values['val-items']),
  testItems: Number(values['test-items']),
  minPixels: Number(values.pixels),
  maxPixels: Number(values.pixels),
  log: (line) => console.error(line),
}).then(
  () => console.error(`dataset written to ${positionals[0]} in ${((Date.now() - t0) / 1000).toFixed(1)} s`),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
