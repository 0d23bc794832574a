import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Methods, type AskResult } from '../server/protocol';
import { startLspServer } from './helpers/lspClient';
import { fixturesDir, repoRoot } from './helpers/paths';
import { ensureTinyModel } from './helpers/tinyModel';

const cli = join(repoRoot, 'dist', 'cli.js');

test('`diffusionvl serve --stdio --model <dir>` from the bundle answers a plain LSP client', { skip: !existsSync(cli) && 'dist/cli.js not built' }, async () => {
  const model = await ensureTinyModel('fp32');
  // No workspace folders and bare capabilities: any LSP client.
  const client = await startLspServer({ entry: [cli, 'serve', '--stdio'], args: ['--model', model], capabilities: {} });
  try {
    const res = await client.request<AskResult>(Methods.ask, {
      image: { path: join(fixturesDir, 'lsp', 'diagram.png') },
      question: 'What is this?',
      options: { maxNewTokens: 8 },
    });
    assert.equal(typeof res.text, 'string');
    assert.equal(res.stats.generatedTokens, 8);
  } finally {
    await client.close();
  }
});
