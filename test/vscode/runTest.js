// Runs the end-to-end scenarios inside a downloaded VS Code with @vscode/test-electron (needs internet access to
// download VS Code; CI here uses the code-server suite in test/e2e instead). Usage, after `npm run build`:
//   node test/vscode/runTest.js            (VS Code stable; VSCODE_VERSION=1.100.3 to pin)
// Plain JavaScript on purpose: `npm test` runs everything tsc writes to out/test/, and this needs a real VS Code.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { runTests } = require('@vscode/test-electron');

const repo = path.resolve(__dirname, '..', '..');

async function main() {
  const model = process.env.E2E_MODEL || path.join(repo, 'models', 'default');
  if (!fs.existsSync(path.join(model, 'manifest.json'))) throw new Error(`no model at ${model}: run npm run setup first`);
  if (!fs.existsSync(path.join(repo, 'dist', 'extension.js'))) throw new Error('dist/extension.js missing: run npm run build first');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'diffusionvl-vscode-test-'));
  const workspace = path.join(work, 'workspace');
  const userData = path.join(work, 'user-data');
  fs.cpSync(path.join(repo, 'test', 'e2e', 'fixtures', 'workspace'), workspace, { recursive: true });
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({
    'diffusionvl.modelPath': model,
    'diffusionvl.maxNewTokens': 32,
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
  }, null, 2));
  try {
    await runTests({
      version: process.env.VSCODE_VERSION || 'stable',
      extensionDevelopmentPath: repo,
      extensionTestsPath: path.join(__dirname, 'suite.js'),
      launchArgs: [workspace, '--user-data-dir', userData, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome'],
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
