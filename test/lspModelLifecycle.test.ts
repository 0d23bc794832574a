import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Engine, EngineOptions } from '../server/engine/api';
import { ModelManager } from '../server/lsp/modelLifecycle';
import { DEFAULT_SETTINGS } from '../server/lsp/settings';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function modelDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dvl-ml-'));
  dirs.push(d);
  await writeFile(join(d, 'manifest.json'), '{}');
  return d;
}

function fakeFactory(failProviders: string[] = []) {
  const created: EngineOptions[] = [];
  let disposed = 0;
  const factory = async (opts: EngineOptions): Promise<Engine> => {
    if (failProviders.includes(opts.provider ?? 'auto')) throw new Error(`${opts.provider} provider library not found`);
    created.push(opts);
    return {
      info: { modelDir: opts.modelDir, architecture: 'fake', precision: 'fp32', provider: opts.provider ?? 'cpu', providerReason: 'requested' },
      ask: async () => {
        throw new Error('unused');
      },
      generateIds: async () => {
        throw new Error('unused');
      },
      dispose: async () => {
        disposed++;
      },
    };
  };
  return { factory, created, disposed: () => disposed };
}

test('loads on first use only, once for concurrent users, and unloads after the idle timeout', async () => {
  const f = fakeFactory();
  const m = new ModelManager(f.factory, { ...DEFAULT_SETTINGS, modelDir: await modelDir(), idleUnloadSeconds: 0.05 }, () => {}, () => {});
  assert.equal(m.status().model.state, 'unloaded');
  await Promise.all([m.use(async () => 1), m.use(async () => 2)]);
  assert.equal(f.created.length, 1);
  assert.equal(m.status().model.state, 'ready');
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(m.status().model.state, 'unloaded');
  assert.equal(f.disposed(), 1);
  await m.use(async () => 3);
  assert.equal(f.created.length, 2, 'reloaded on next use');
  await m.dispose();
});

test('a model settings change reloads; other changes do not', async () => {
  const f = fakeFactory();
  const a = await modelDir();
  const b = await modelDir();
  const s = { ...DEFAULT_SETTINGS, modelDir: a, provider: 'cpu' as const };
  const m = new ModelManager(f.factory, s, () => {}, () => {});
  await m.use(async () => 0);
  m.configure({ ...s, hover: { ...s.hover, maxNewTokens: 10 } });
  await m.use(async () => 0);
  assert.equal(f.created.length, 1);
  m.configure({ ...s, modelDir: b });
  await new Promise((r) => setTimeout(r, 20));
  await m.use(async () => 0);
  assert.deepEqual(f.created.map((c) => c.modelDir), [a, b]);
  assert.equal(f.disposed(), 1);
  await m.dispose();
});

test('a provider that fails to start falls back to cpu and the reason is reported', async () => {
  const f = fakeFactory(['cuda']);
  const logs: string[] = [];
  const m = new ModelManager(f.factory, { ...DEFAULT_SETTINGS, modelDir: await modelDir(), provider: 'cuda' }, () => {}, (msg) => logs.push(msg));
  await m.use(async () => 0);
  const st = m.status();
  assert.equal(st.provider.inUse, 'cpu');
  assert.match(st.provider.reason ?? '', /cuda failed to start .*fell back to cpu/);
  assert.ok(logs.some((l) => /fell back to cpu/.test(l)));
  await m.dispose();
});

test('an unexpected engine failure replaces the engine on the next request', async () => {
  const f = fakeFactory();
  const m = new ModelManager(f.factory, { ...DEFAULT_SETTINGS, modelDir: await modelDir() }, () => {}, () => {});
  await assert.rejects(m.use(async () => {
    throw new Error('engine worker exited (code 1)');
  }));
  await new Promise((r) => setTimeout(r, 10));
  await m.use(async () => 0);
  assert.equal(f.created.length, 2);
  await m.dispose();
});
