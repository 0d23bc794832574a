// The end-to-end scenarios of test/e2e/suite.mjs, driven through VS Code's API instead of the UI (runs inside the
// extension host started by runTest.js). Paste is left to the UI suite: the API cannot put an image on the clipboard.
'use strict';
const assert = require('assert');
const { execFileSync } = require('child_process');
const path = require('path');
const vscode = require('vscode');

const EXTENSION_ID = 'diffusionvl.diffusionvl-vscode';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, what, timeoutMs = 120000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

function root() {
  return vscode.workspace.workspaceFolders[0].uri;
}
const file = (rel) => vscode.Uri.joinPath(root(), rel);

/** PIDs of node processes running this extension's dist/server.js. */
function sidecarPids(extensionPath) {
  const out = execFileSync('ps', ['-A', '-o', 'pid=,command='], { encoding: 'utf8' });
  const server = path.join(extensionPath, 'dist', 'server.js');
  return out.split('\n').filter((l) => l.includes(server)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

const scenarios = {
  async status(api) {
    const s = await until(() => api.sidecar.refreshStatus(), 'status');
    assert.notStrictEqual(s.model.state, 'none', 'a model is configured');
  },

  async ask() {
    const answer = await vscode.commands.executeCommand('diffusionvl.askAboutImage', file('images/house.png'), 'What is in this picture?');
    assert.ok(typeof answer === 'string' && answer.trim(), 'an answer came back');
  },

  async describe() {
    const doc = await vscode.workspace.openTextDocument(file('src/app.py'));
    const editor = await vscode.window.showTextDocument(doc);
    const end = doc.lineAt(doc.lineCount - 1).range.end;
    editor.selection = new vscode.Selection(end, end);
    await vscode.commands.executeCommand('diffusionvl.describeImageAndInsert', file('images/house.png'));
    const added = doc.getText().split('\n').slice(6).filter((l) => l.trim());
    assert.ok(added.length && added.every((l) => l.trim().startsWith('#')), `a # comment was inserted: ${added.join('\n')}`);
  },

  async hover() {
    const doc = await vscode.workspace.openTextDocument(file('notes.md'));
    const line = doc.getText().split('\n').findIndex((l) => l.includes('images/house.png'));
    const hovers = await vscode.commands.executeCommand('vscode.executeHoverProvider', doc.uri, new vscode.Position(line, 8));
    const text = hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');
    assert.match(text, /DiffusionVL/);
  },

  async quickfix() {
    const doc = await vscode.workspace.openTextDocument(file('notes.md'));
    const line = doc.getText().split('\n').findIndex((l) => l.includes('images/house.png'));
    const range = new vscode.Range(line, 5, line, 5);
    const actions = await vscode.commands.executeCommand('vscode.executeCodeActionProvider', doc.uri, range, undefined, 10);
    const fix = actions.find((a) => /alt text/i.test(a.title));
    assert.ok(fix, `an alt-text fix among: ${actions.map((a) => a.title).join(', ')}`);
    if (fix.edit) await vscode.workspace.applyEdit(fix.edit);
    if (fix.command) await vscode.commands.executeCommand(fix.command.command, ...(fix.command.arguments || []));
    await until(() => /!\[[^\]]+\]\(images\/house\.png\)/.test(doc.getText()), 'the alt text');
  },

  async restart(api, ext) {
    const [pid] = await until(() => sidecarPids(ext.extensionPath).length && sidecarPids(ext.extensionPath), 'the sidecar');
    await vscode.workspace.getConfiguration('diffusionvl').update('maxNewTokens', 1024, vscode.ConfigurationTarget.Global);
    const inFlight = api.sidecar.ask({ image: { path: file('images/house.png').fsPath }, question: 'Describe every detail.', options: { maxNewTokens: 1024, steps: 32 } }, () => undefined);
    await sleep(1500);
    process.kill(pid, 'SIGKILL');
    await assert.rejects(inFlight, /stopped while working/);
    await until(() => sidecarPids(ext.extensionPath).some((p) => p !== pid), 'a restarted sidecar');
    await vscode.workspace.getConfiguration('diffusionvl').update('maxNewTokens', undefined, vscode.ConfigurationTarget.Global);
    await scenarios.ask();
  },

  async cancel(api) {
    const cts = new vscode.CancellationTokenSource();
    const run = api.sidecar.ask(
      { image: { path: file('images/house.png').fsPath }, question: 'Write a long story about this house.', options: { maxNewTokens: 2048, steps: 64 } },
      () => cts.cancel(),
      cts.token,
    );
    setTimeout(() => cts.cancel(), 3000);
    await assert.rejects(run, (err) => err.cancelled === true);
  },
};

async function run() {
  const ext = vscode.extensions.getExtension(EXTENSION_ID);
  const api = await ext.activate();
  const failures = [];
  for (const [name, fn] of Object.entries(scenarios)) {
    try {
      await fn(api, ext);
      console.log(`ok ${name}`);
    } catch (err) {
      failures.push(name);
      console.error(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    }
  }
  const total = Object.keys(scenarios).length;
  console.log(`${total - failures.length} passed, ${failures.length} failed`);
  if (failures.length) throw new Error(`failed: ${failures.join(', ')}`);
}

module.exports = { run };
