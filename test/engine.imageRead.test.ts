import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EngineCore } from '../server/engine/engineCore';
import { fixturesDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

// The engine core in this thread (no worker), so the file system calls it makes can be counted.
let core: EngineCore;
const image = join(fixturesDir, 'lsp', 'diagram.png');
const ctx = { cancelled: () => false, steps: false, emit: () => {} };

before(async () => {
  core = await EngineCore.create({ modelDir: await ensureTinyModel('fp32'), provider: 'cpu', threads: 1 });
});
after(() => core?.dispose());

test('an image file is read once per ask: on a vision-cache miss the bytes that key the cache are the ones decoded', async (t) => {
  const reads: string[] = [];
  const readFile = fsp.readFile;
  t.mock.method(fsp, 'readFile', (...args: Parameters<typeof readFile>) => {
    if (args[0] === image) reads.push(String(args[0]));
    return readFile(...args);
  });
  const first = await core.ask({ images: [{ path: image }], question: 'What is this?', options: { maxNewTokens: 8 } }, ctx);
  assert.equal(first.stats.cache.visionHit, false);
  assert.equal(reads.length, 1, 'one read on a miss');
  const second = await core.ask({ images: [{ path: image }], question: 'What is this?', options: { maxNewTokens: 8 } }, ctx);
  assert.equal(second.stats.cache.visionHit, true);
  assert.equal(reads.length, 2, 'one read on a hit (the bytes are the cache key)');
  assert.deepEqual(second.outputIds, first.outputIds);
});
