#!/usr/bin/env node
// Runs the TypeScript engine on the first validation rows of a dataset (same prompt ids, same rendered images as
// parity.py) and prints the generated ids as JSON lines, for comparison with the PyTorch reference.
// Usage: node tools/train/parity.js DATA_DIR MODEL_DIR [--count N] [--ar]
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { parseArgs } = require('node:util');
const out = join(__dirname, '..', '..', 'out', 'server');
const { createEngine } = require(join(out, 'engine', 'engine.js'));
const { itemAt } = require(join(out, 'synthetic', 'generator.js'));
const { renderPng } = require(join(out, 'synthetic', 'render.js'));
const { ArDecoder } = require(join(out, 'synthetic', 'arDecode.js'));

const { values, positionals } = parseArgs({ allowPositionals: true, options: { count: { type: 'string', default: '8' }, ar: { type: 'boolean' }, 'gen-len': { type: 'string', default: '16' } } });
const [dataDir, modelDir] = positionals;
const meta = JSON.parse(readFileSync(join(dataDir, 'meta.json'), 'utf8'));
const rows = readFileSync(join(dataDir, 'val.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

(async () => {
  const n = Number(values.count);
  if (values.ar) {
    const ar = await ArDecoder.load(modelDir, 1);
    for (let i = 0; i < n; i++) {
      const item = itemAt(meta.seed, 'val', rows[i].img);
      const r = await ar.ask(await renderPng(item.svg), item.question, 12);
      console.log(JSON.stringify({ index: i, ids: r.ids }));
    }
    await ar.dispose();
    return;
  }
  const engine = await createEngine({ modelDir, provider: 'cpu', threads: 1 });
  for (let i = 0; i < n; i++) {
    const png = await renderPng(itemAt(meta.seed, 'val', rows[i].img).svg);
    const r = await engine.generateIds({ promptIds: rows[i].prompt, images: [{ bytes: png }], options: { maxNewTokens: Number(values['gen-len']), steps: 8 } });
    console.log(JSON.stringify({ index: i, ids: r.outputIds }));
  }
  await engine.dispose();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
