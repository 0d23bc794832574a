import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ErrorCodes, Methods, type AskResult, type ErrorData, type StatusResult } from '../server/protocol';
import { EXECUTION_PROVIDERS } from '../server/engine/api';
import { GENERATION_OPTIONS } from '../server/engine/generationOptions';
import { DEFAULT_SETTINGS, generationDefaults, SettingsStore } from '../server/lsp/settings';
import { startLspServer, type LspClient } from './helpers/lspClient';
import { fixturesDir } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

// A real sidecar that never needs to load a model: settings, status and request validation only.
let client: LspClient;
let model: string;

before(async () => {
  model = await ensureTinyModel('fp32');
  client = await startLspServer({ workspaceFolders: [fixturesDir], args: ['--model', model], settings: { executionProvider: 'cpu' } });
});
after(() => client?.close());

const status = () => client.request<StatusResult>(Methods.status, null);
const change = (diffusionvl: unknown) => client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { diffusionvl } });

test('settings use the user-facing names, and a partial didChangeConfiguration keeps earlier changes', async () => {
  const st0 = await status();
  assert.equal(st0.model.dir, model, 'serve --model sets the start-up modelPath');
  assert.equal(st0.model.source, 'setting');
  assert.equal(st0.provider.requested, 'cpu');
  assert.equal(st0.model.idleUnloadMinutes, DEFAULT_SETTINGS.idleUnloadMinutes);

  const other = join(fixturesDir, 'elsewhere');
  await change({ modelPath: other });
  await change({ hover: { enabled: false } });
  await change({ idleUnloadMinutes: 12 });
  const st = await status();
  assert.equal(st.model.dir, other, 'the model folder set earlier survives later partial updates');
  assert.equal(st.model.idleUnloadMinutes, 12);
  assert.equal(st.provider.requested, 'cpu', 'the start-up provider survives too');

  // A malformed value is refused and the previous one kept; the log names the real setting.
  await change({ executionProvider: 'tpu' });
  assert.equal((await status()).provider.requested, 'cpu');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok((client.stderr() + JSON.stringify(client.notifications)).includes(`diffusionvl.executionProvider must be one of ${EXECUTION_PROVIDERS.join(', ')}, got \\"tpu\\"`), 'the refusal is logged with the setting\'s name');

  await change({ modelPath: model });
  assert.equal((await status()).model.dir, model);
});

test('a bad generation option is an options error (InvalidOptions), never an image error', async () => {
  const image = { path: join(fixturesDir, 'lsp', 'diagram.png') };
  for (const [options, pattern] of [
    [{ topP: 0 }, /^topP must be a number in \(0, 1\], got 0$/],
    [{ steps: 0 }, /^steps must be an integer in \[1, \d+\], got 0$/],
    [{ maxNewTokens: 1e9 }, /^maxNewTokens must be an integer in \[1, \d+\]/],
    [{ strategy: 'greedy' }, /^strategy must be "static" or "dynamic"/],
    [{ stepz: 8 }, /^stepz: unknown option/],
  ] as const) {
    await assert.rejects(client.request(Methods.ask, { image, question: 'q', options }), (e: { code: number; message: string; data?: ErrorData }) => {
      assert.equal(e.code, ErrorCodes.InvalidOptions, `${JSON.stringify(options)}: ${e.message}`);
      assert.deepEqual(e.data, { code: 'InvalidOptions', kind: 'options' });
      assert.match(e.message, pattern);
      return true;
    });
  }
});

test('generation settings (user names) are the defaults of asks that leave them out; request options win', async () => {
  const image = { path: join(fixturesDir, 'lsp', 'diagram.png') };
  await change({ maxNewTokens: 3, remasking: 'static', steps: 3 });
  const byDefault = await client.request<AskResult>(Methods.ask, { image, question: 'q' });
  assert.equal(byDefault.stats!.generatedTokens, 3);
  const explicit = await client.request<AskResult>(Methods.ask, { image, question: 'q', options: { maxNewTokens: 5 } });
  assert.equal(explicit.stats!.generatedTokens, 5);
  await change({ confidenceThreshold: 2 });
  await new Promise((r) => setTimeout(r, 100));
  assert.match(client.stderr() + JSON.stringify(client.notifications), /diffusionvl\.confidenceThreshold must be a number in \[0, 1\], got 2/);
  await change({ maxNewTokens: null, steps: null, remasking: null });
});

test('verifySteps: the setting takes auto or an integer (as text too) into the generation defaults; a pinned value (serve --verify-steps) wins over client updates', () => {
  const store = new SettingsStore();
  assert.deepEqual(store.update({ verifySteps: '4' }).problems, []);
  assert.equal(generationDefaults(store.current).verifySteps, 4);
  assert.deepEqual(store.update({ verifySteps: 'auto' }).problems, []);
  assert.equal(generationDefaults(store.current).verifySteps, 'auto');
  assert.deepEqual(store.update({ verifySteps: 0 }).problems, ['diffusionvl.verifySteps must be "auto" or an integer in [1, 16], got 0']);
  const pinned = new SettingsStore(undefined, { verifySteps: '2' as unknown as number });
  assert.deepEqual(pinned.update({ verifySteps: 8, steps: 4 }).problems, []);
  assert.equal(pinned.current.verifySteps, 2);
  assert.equal(pinned.current.steps, 4);
});

test('the settings store applies updates over what it holds and names the real setting in every message', () => {
  const store = new SettingsStore();
  assert.deepEqual(store.update({ modelPath: '/m', hover: { enabled: false } }), { model: true, problems: [] });
  assert.deepEqual(store.update({ hover: { prompt: 'Say what you see.' } }), { model: false, problems: [] });
  assert.equal(store.current.modelPath, '/m');
  assert.deepEqual(store.current.hover, { ...DEFAULT_SETTINGS.hover, enabled: false, prompt: 'Say what you see.' });
  const bad = store.update({ idleUnloadMinutes: -1, hover: { maxNewTokens: 'many' }, threads: 0 });
  assert.deepEqual(bad.problems, [
    'diffusionvl.threads must be an integer in [1, 256], got 0',
    'diffusionvl.idleUnloadMinutes must be a number in [0, 10080], got -1',
    `diffusionvl.hover.maxNewTokens must be an integer in [1, ${GENERATION_OPTIONS.maxNewTokens.max}], got "many"`,
  ]);
  assert.equal(store.current.idleUnloadMinutes, DEFAULT_SETTINGS.idleUnloadMinutes);
  assert.equal(store.update({ modelPath: '' }).model, true, 'an empty modelPath clears it (the default model applies)');
  assert.equal(store.current.modelPath, undefined);
  assert.deepEqual(store.update({ modelDir: '/old-name', provider: 'cuda' }), { model: false, problems: [] }, 'the old wire names mean nothing');
  assert.deepEqual(store.update({ executionProvider: undefined, threads: undefined }), { model: false, problems: [] }, 'undefined means absent');
  store.update({ steps: 4, remasking: 'dynamic', confidenceThreshold: 0.5 });
  assert.deepEqual(generationDefaults(store.current), { steps: 4, strategy: 'dynamic', threshold: 0.5 });
  assert.deepEqual(store.update({ steps: 0, remasking: 'greedy' }).problems, [
    `diffusionvl.steps must be an integer in [1, ${GENERATION_OPTIONS.steps.max}], got 0`,
    'diffusionvl.remasking must be "static" or "dynamic", got "greedy"',
  ]);
});
