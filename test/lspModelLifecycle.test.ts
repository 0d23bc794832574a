import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Engine, EngineOptions } from '../server/engine/api';
import { createEngine } from '../server/engine/engine';
import { errorKind } from '../server/engine/errors';
import { ModelManager } from '../server/lsp/modelLifecycle';
import { DEFAULT_SETTINGS } from '../server/lsp/settings';
import type { ServerSettings } from '../server/protocol';
import { ensureTinyModel } from './helpers/tinyModel';

// The real engine on the tiny model, counted: the ModelManager must behave against what createEngine really does.
let model: string;
let broken: string;
const dirs: string[] = [];

before(async () => {
  model = await ensureTinyModel('fp32');
  broken = await mkdtemp(join(tmpdir(), 'dvl-ml-broken-'));
  dirs.push(broken);
  await cp(model, broken, { recursive: true });
  await writeFile(join(broken, 'decoder.onnx'), 'not an onnx graph');
});
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

function countingFactory() {
  const calls: EngineOptions[] = [];
  const engines: Engine[] = [];
  const factory = async (opts: EngineOptions): Promise<Engine> => {
    calls.push(opts);
    const e = await createEngine(opts);
    engines.push(e);
    return e;
  };
  return { factory, calls, engines };
}

function settings(over: Partial<ServerSettings>): ServerSettings {
  return { ...DEFAULT_SETTINGS, executionProvider: 'cpu', threads: 1, ...over };
}

test('loads on first use only, once for concurrent users, and unloads after the idle timeout', async () => {
  const f = countingFactory();
  const m = new ModelManager(f.factory, settings({ modelPath: model, idleUnloadMinutes: 0.1 / 60 }), () => {}, () => {});
  assert.equal(m.status().model.state, 'unloaded');
  await Promise.all([m.use(async () => 1), m.use(async () => 2)]);
  assert.equal(f.calls.length, 1);
  assert.equal(m.status().model.state, 'ready');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(m.status().model.state, 'unloaded');
  await m.use(async () => 3);
  assert.equal(f.calls.length, 2, 'reloaded on next use');
  await m.dispose();
});

test('a model settings change reloads; other changes do not', async () => {
  const f = countingFactory();
  const other = await mkdtemp(join(tmpdir(), 'dvl-ml-other-'));
  dirs.push(other);
  await cp(model, other, { recursive: true });
  const s = settings({ modelPath: model });
  const m = new ModelManager(f.factory, s, () => {}, () => {});
  await m.use(async () => 0);
  m.configure({ ...s, hover: { ...s.hover, maxNewTokens: 10 } });
  await m.use(async () => 0);
  assert.equal(f.calls.length, 1);
  m.configure({ ...s, modelPath: other });
  await new Promise((r) => setTimeout(r, 50));
  await m.use(async () => 0);
  assert.deepEqual(f.calls.map((c) => c.modelDir), [model, other]);
  await m.dispose();
});

test('a model that fails to load is loaded once, and status shows why', async () => {
  // Requesting a GPU provider: the engine tries it and falls back to cpu on its own; the manager must not retry.
  const f = countingFactory();
  const m = new ModelManager(f.factory, settings({ modelPath: broken, executionProvider: 'cuda' }), () => {}, () => {});
  await assert.rejects(m.use(async () => 0), (err: Error) => errorKind(err) === 'model' && err.message.includes(broken));
  assert.equal(f.calls.length, 1, 'one load attempt');
  const st = m.status();
  assert.equal(st.model.state, 'error');
  assert.match(st.model.error ?? '', /cannot load the model/);
  // A second request right away fails fast from the remembered error, without loading again.
  await assert.rejects(m.use(async () => 0), (err: Error) => errorKind(err) === 'model');
  assert.equal(f.calls.length, 1);
  await m.dispose();
});

test("status reports the engine's own provider choice and reason, with or without a GPU", async () => {
  const f = countingFactory();
  const m = new ModelManager(f.factory, settings({ modelPath: model, executionProvider: 'cuda' }), () => {}, () => {});
  await m.use(async () => 0);
  assert.equal(f.calls.length, 1);
  const info = f.engines[0].info;
  const st = m.status();
  assert.equal(st.provider.requested, 'cuda');
  assert.equal(st.provider.inUse, info.provider);
  assert.equal(st.provider.reason, info.providerReason);
  if (info.provider === 'cpu') assert.match(info.providerReason, /^cuda unavailable: .+; fell back to cpu$/);
  else assert.equal(info.provider, 'cuda');
  await m.dispose();
});

test('an unexpected engine failure replaces the engine on the next request; a kinded error does not', async () => {
  const f = countingFactory();
  const m = new ModelManager(f.factory, settings({ modelPath: model }), () => {}, () => {});
  await assert.rejects(m.use((e) => e.ask({ images: [{ bytes: new Uint8Array([1, 2, 3]) }], question: 'q' })), (err: Error) => errorKind(err) === 'image');
  await m.use(async () => 0);
  assert.equal(f.calls.length, 1, 'a bad image leaves the engine loaded');
  await assert.rejects(m.use(async () => {
    throw new Error('engine worker exited (code 1)');
  }));
  await new Promise((r) => setTimeout(r, 20));
  await m.use(async () => 0);
  assert.equal(f.calls.length, 2);
  await m.dispose();
});

test('without modelPath the embedded default model is used and status says so; without either, status says what to set', async () => {
  const f = countingFactory();
  const m = new ModelManager(f.factory, settings({}), () => {}, () => {}, model);
  assert.deepEqual(m.model(), { dir: model, source: 'default' });
  await m.use(async () => 0);
  const st = m.status();
  assert.equal(st.model.source, 'default');
  assert.equal(st.model.dir, model);
  assert.equal(f.calls[0].modelDir, model);
  await m.dispose();

  const none = new ModelManager(f.factory, settings({}), () => {}, () => {}, join(broken, 'missing'));
  assert.equal(none.status().model.state, 'none');
  assert.match(none.status().model.error ?? '', /diffusionvl\.modelPath/);
  await assert.rejects(none.use(async () => 0), (err: Error) => errorKind(err) === 'model' && /diffusionvl\.modelPath/.test(err.message));
});
