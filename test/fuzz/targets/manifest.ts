import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingTable } from '../../../server/engine/embeddings';
import { MANIFEST_FILE, readManifest } from '../../../server/engine/manifest';
import { expectRefusal, invariant, type FuzzTarget } from '../target';
import { repoRoot } from './repo';
import { scratchDir } from './scratch';

/**
 * Input: a converted model's manifest.json, next to the demo model's real embedding table; read and checked as the
 * engine does when it loads a model, then its embedding table opened and the special rows read.
 */
let dir = '';
export const target: FuzzTarget = {
  maxLength: 16 * 1024,
  dictionary: [
    '"format"', '"diffusionvl-onnx"', '"formatVersion"', '"architecture"', '"diffusionvl_qwenvl"', '"diffusionvl_qwen"', '"precision"',
    '"int4"', '"kvDtype"', '"float16"', '"blockSize"', '"text"', '"vision"', '"image"', '"tokens"', '"files"', '"embeddings"', '"rows"',
    '"cols"', '"dtype"', '"file"', '"embeddings.bin"', '"../embeddings.bin"', '"/etc/passwd"', '"gridPinpoints"', '"aspectRatio"',
    '"anyres_max_9"', '"newlineFile"', '"mergeType"', '"spatial_unpad"', '"maxPromptRows"', 'null', '[]', '{}',
  ],
  setup() {
    dir = scratchDir('manifest');
    copyFileSync(join(repoRoot, 'models', 'default', 'embeddings.bin'), join(dir, 'embeddings.bin'));
    return Promise.resolve();
  },
  fuzz(data) {
    writeFileSync(join(dir, MANIFEST_FILE), data);
    try {
      const m = readManifest(dir);
      const table = new EmbeddingTable(join(dir, m.embeddings.file), m.embeddings.rows, m.embeddings.cols, m.embeddings.dtype, [m.tokens.mask]);
      try {
        for (const id of [m.tokens.eos, m.tokens.pad, m.tokens.mask]) invariant(table.readRow(id).length === m.text.hiddenSize, `row ${id} width`);
      } finally {
        table.close();
      }
    } catch (err) {
      expectRefusal(err, { kinds: ['model'] });
    }
  },
};
