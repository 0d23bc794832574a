#!/usr/bin/env node
// Compares the converted model's vision features and block-causal prompt hidden states on validation row 0 with the
// PyTorch dump of `parity.py --hidden DATA CKPT PREFIX` (block-causal with B = 8 on both sides). Usage: node tools/train/parity_hidden.js DATA MODEL PREFIX
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const out = join(__dirname, '..', '..', 'out', 'server');
const { readManifest } = require(join(out, 'engine', 'manifest.js'));
const { EmbeddingTable } = require(join(out, 'engine', 'embeddings.js'));
const { OrtModel } = require(join(out, 'engine', 'ortModel.js'));
const { preprocessImage, preprocessOptionsFor } = require(join(out, 'engine', 'image', 'index.js'));
const { blockCausalMask } = require(join(out, 'engine', 'masks.js'));
const { range } = require(join(out, 'engine', 'rope.js'));
const V = require(join(out, 'engine', 'visionLayout.js'));
const { itemAt } = require(join(out, 'synthetic', 'generator.js'));
const { renderPng } = require(join(out, 'synthetic', 'render.js'));

const [dataDir, modelDir, prefix] = process.argv.slice(2);
const f32 = (p) => new Float32Array(readFileSync(p).buffer.slice(0));
const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

(async () => {
  const meta = JSON.parse(readFileSync(join(dataDir, 'meta.json'), 'utf8'));
  const row = JSON.parse(readFileSync(join(dataDir, 'val.jsonl'), 'utf8').split('\n')[0]);
  const m = readManifest(modelDir);
  const emb = new EmbeddingTable(join(modelDir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype);
  const model = await OrtModel.load(modelDir, m, 'cpu', emb, 1);
  const pre = await preprocessImage(await renderPng(itemAt(meta.seed, 'val', row.img).svg), preprocessOptionsFor(m.image, m.vision));
  const lay = V.visionLayout(pre.gridThw, m.vision);
  const rot = V.visionRotary(lay, m.vision);
  const u = 4;
  const feats = await model.vision({
    patches: V.permuteUnits(pre.pixelValues, pre.pixelValues.length / lay.numPatches, u, lay.windowIndex),
    cos: V.permuteUnits(rot.cos, m.vision.headDim, u, lay.windowIndex),
    sin: V.permuteUnits(rot.sin, m.vision.headDim, u, lay.windowIndex),
    windowMask: V.windowMask(lay),
    restoreIndex: lay.restoreIndex,
  });
  const h = m.text.hiddenSize;
  const n = feats.length / h;
  const L = row.prompt.length - 1 + n;
  const x = new Float32Array(L * h);
  let r = 0;
  for (const id of row.prompt) {
    if (id === -200) {
      x.set(feats, r * h);
      r += n;
    } else model.embedRow(id, x, r++ * h);
  }
  const pos = range(0, L);
  const dec = await model.decode(x, pos, blockCausalMask(pos, 0, 8), null, false);
  const head = await model.head(dec.hidden, true);
  const res = {
    features: maxDiff(feats, f32(prefix + '.features.f32')),
    hidden: maxDiff(dec.hidden, f32(prefix + '.hidden.f32')),
    logits: maxDiff(head.logits, f32(prefix + '.logits.f32')),
  };
  console.log(JSON.stringify(res));
  await model.release();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
