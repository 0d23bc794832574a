/* global fetch, document, DataTransfer, File, ClipboardEvent, atob */
// End-to-end suite: the packaged .vsix installed into a real VS Code (code-server), driven through its UI by
// Playwright with Debian's chromium. Run it with test/e2e/run.sh (after test/e2e/setup.sh).
// Env: E2E_ONLY=ask,hover (subset), E2E_KEEP=1 (keep the work folder), E2E_HEADED=1 (not here: no display).
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE = process.env.E2E_CACHE || path.join(REPO, '.cache', 'e2e');
const { chromium } = createRequire(path.join(CACHE, 'package.json'))('playwright-core');
const CODE_SERVER = path.join(CACHE, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const PKG = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
const VSIX = process.env.E2E_VSIX || path.join(REPO, 'dist', `${PKG.name}-linux-x64-${PKG.version}.vsix`);
const MODEL = process.env.E2E_MODEL || path.join(REPO, 'models', 'default');
// The default model answers in a block or two; the restart and cancel scenarios need a generation that runs long
// enough to interrupt, so they switch to the random-weight tiny model (it never emits EOS). setup.sh records it.
const LONG_MODEL = process.env.E2E_LONG_MODEL || fs.readFileSync(path.join(CACHE, 'long-model.path'), 'utf8').trim();
const ARTIFACTS = path.join(REPO, 'test-artifacts', 'e2e');
const WORK = path.join(CACHE, 'run');
const ONLY = process.env.E2E_ONLY ? new Set(process.env.E2E_ONLY.split(',')) : undefined;
const T0 = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1)}s] ${m}`);

async function until(fn, what, timeoutMs = 60_000, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ------------------------------------------------------------------ fresh profile and workspace
for (const f of [VSIX, CODE_SERVER, path.join(MODEL, 'manifest.json'), path.join(LONG_MODEL, 'manifest.json')]) {
  if (!fs.existsSync(f)) {
    console.error(`e2e: ${f} is missing; run test/e2e/setup.sh first`);
    process.exit(2);
  }
}
fs.rmSync(WORK, { recursive: true, force: true });
fs.rmSync(ARTIFACTS, { recursive: true, force: true });
const dirs = { home: path.join(WORK, 'home'), userData: path.join(WORK, 'user-data'), extensions: path.join(WORK, 'extensions'), workspace: path.join(WORK, 'workspace') };
for (const d of [...Object.values(dirs), ARTIFACTS, path.join(dirs.userData, 'User')]) fs.mkdirSync(d, { recursive: true });
fs.cpSync(path.join(REPO, 'test', 'e2e', 'fixtures', 'workspace'), dirs.workspace, { recursive: true });
const ws = (...p) => path.join(dirs.workspace, ...p);

const userSettings = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.colorTheme': 'Default Dark Modern',
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'security.workspace.trust.enabled': false,
  'chat.disableAIFeatures': true,
  'git.enabled': false,
  'files.autoSave': 'afterDelay',
  'files.autoSaveDelay': 200,
  'editor.minimap.enabled': false,
  'editor.hover.delay': 200,
  'editor.hover.sticky': true,
  // Machine setting: the model is chosen by the user profile, never by the workspace.
  'diffusionvl.modelPath': MODEL,
  'diffusionvl.maxNewTokens': 32,
  // Our paste option as the default, so a plain Ctrl+V exercises it (the picker widget shows the others).
  'editor.pasteAs.preferences': ['markdown.link.image.diffusionvl'],
};
const settingsFile = path.join(dirs.userData, 'User', 'settings.json');
// Machine-scoped settings (the model folder, the provider) are read from the remote machine's settings file in
// code-server, as under VS Code Remote; everything else from the user's.
const machineSettingsFile = path.join(dirs.userData, 'Machine', 'settings.json');
fs.mkdirSync(path.dirname(machineSettingsFile), { recursive: true });
const writeSettings = (extra = {}) => {
  const all = { ...userSettings, ...extra };
  fs.writeFileSync(settingsFile, JSON.stringify(all, null, 2));
  fs.writeFileSync(machineSettingsFile, JSON.stringify(Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('diffusionvl.'))), null, 2));
};
/** Writes settings that select `model`, and waits until the status bar names it (the server has the new settings). */
async function useModel(model, extra = {}) {
  writeSettings(model === MODEL ? extra : { 'diffusionvl.modelPath': model, ...extra });
  const name = path.basename(model);
  await until(async () => (await statusItem().innerText()).includes(name), `the status bar to show ${name}`, 60_000, 500);
}
writeSettings();

const env = {
  ...process.env,
  HOME: dirs.home,
  XDG_CONFIG_HOME: path.join(dirs.home, '.config'),
  XDG_DATA_HOME: path.join(dirs.home, '.local', 'share'),
  XDG_CACHE_HOME: path.join(dirs.home, '.cache'),
  TMPDIR: process.env.TMPDIR || path.join(CACHE, 'tmp'),
};
const csArgs = ['--config', path.join(WORK, 'config.yaml'), '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions];

log(`installing ${path.relative(REPO, VSIX)}`);
execFileSync(process.execPath, [CODE_SERVER, ...csArgs, '--install-extension', VSIX], { env, stdio: 'inherit' });
// A test-only extension that sends requests to our chat handler and language-model tool, as VS Code and agents do.
const HARNESS = path.join(WORK, 'harness');
fs.cpSync(path.join(REPO, 'test', 'e2e', 'harness'), HARNESS, { recursive: true });
execFileSync(process.execPath, [path.join(CACHE, 'node_modules', '@vscode', 'vsce', 'vsce'), 'package', '--skip-license', '--allow-missing-repository', '--out', `${HARNESS}.vsix`], { cwd: HARNESS, env, stdio: 'inherit' });
execFileSync(process.execPath, [CODE_SERVER, ...csArgs, '--install-extension', `${HARNESS}.vsix`], { env, stdio: 'inherit' });

const port = await freePort();
const csLog = fs.openSync(path.join(ARTIFACTS, 'code-server.log'), 'w');
// Own process group, so the extension host and the sidecar go down with it at the end. Workspace trust is off
// except in the `restricted` scenario, which starts code-server again with it on.
const startCodeServer = (trust = false) => spawn(process.execPath, [CODE_SERVER, ...csArgs, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
  '--disable-telemetry', '--disable-update-check', ...(trust ? [] : ['--disable-workspace-trust']), '--disable-getting-started-override', '--ignore-last-opened'],
{ env, stdio: ['ignore', csLog, csLog], detached: true });
let cs = startCodeServer();
async function stopCodeServer() {
  try {
    process.kill(-cs.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  await until(() => { try { process.kill(-cs.pid, 0); return false; } catch { return true; } }, 'code-server to exit', 10_000).catch(() => {
    try { process.kill(-cs.pid, 'SIGKILL'); } catch { /* gone */ }
  });
}

const results = [];
let browser;
let page;

async function shot(name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  log(`  screenshot test-artifacts/e2e/${name}.png`);
}

async function scenario(name, fn) {
  if (ONLY && !ONLY.has(name)) return;
  const t = Date.now();
  log(`▶ ${name}`);
  try {
    await fn();
    results.push({ name, ok: true, ms: Date.now() - t });
    log(`✔ ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (err) {
    results.push({ name, ok: false, ms: Date.now() - t, error: String(err?.stack || err) });
    log(`✘ ${name}: ${err?.message || err}`);
    await page?.screenshot({ path: path.join(ARTIFACTS, `FAILED-${name}.png`) }).catch(() => {});
    await page?.keyboard.press('Escape').catch(() => {});
    await page?.keyboard.press('Escape').catch(() => {});
  }
}

// ------------------------------------------------------------------ UI helpers
const quickInput = () => page.locator('.quick-input-widget');
const quickInputBox = () => quickInput().locator('input.input');

/** Runs a command from the palette (F1), waiting until it is the focused row. */
async function palette(title) {
  await page.keyboard.press('F1');
  await quickInputBox().waitFor({ state: 'visible' });
  await quickInputBox().fill(`>${title}`);
  await quickInput().locator('.monaco-list-row.focused', { hasText: title }).waitFor({ timeout: 15_000 });
  await page.keyboard.press('Enter');
}

/** Types into an open quick pick and accepts the focused row once it shows `rowText`. */
async function pickInQuickInput(text, rowText = text) {
  await quickInputBox().waitFor({ state: 'visible' });
  await quickInputBox().fill(text);
  await quickInput().locator('.monaco-list-row.focused', { hasText: rowText }).waitFor({ timeout: 30_000 });
  await page.keyboard.press('Enter');
}

async function openFile(rel) {
  await page.keyboard.press('Control+P');
  await pickInQuickInput(rel, path.basename(rel));
  await page.locator('.tab.active', { hasText: path.basename(rel) }).waitFor();
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.locator('.view-lines').waitFor();
  return editor;
}

const editorText = async (editor) => (await editor.locator('.view-lines').innerText()).replace(/\u00a0/g, ' ');
const read = (rel) => fs.readFileSync(ws(rel), 'utf8');

/** The frame of our answer panel (a webview: iframes within iframes). */
async function answerFrame() {
  return until(async () => {
    for (const f of page.frames()) {
      if (await f.locator('#exchanges').count().catch(() => 0)) return f;
    }
    return undefined;
  }, 'the answer panel', 30_000);
}

/** The sidecar's PID: a node process running dist/server.js from the installed extension. */
function sidecarPids() {
  const pids = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a.startsWith(dirs.extensions) && a.endsWith(path.join('dist', 'server.js')))) pids.push(Number(d));
    } catch {
      // the process exited meanwhile
    }
  }
  return pids;
}

const statusItem = () => page.locator('#diffusionvl\\.diffusionvl-vscode\\.diffusionvl\\.status, .statusbar-item[id$="diffusionvl.status"]').first();

// ------------------------------------------------------------------ the suite
let exitCode = 1;
try {
  const base = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${base}/healthz`)).ok, 'code-server', 90_000);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    env: { ...env },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  page = await context.newPage();
  page.on('pageerror', (e) => log(`[pageerror] ${e.message}`));
  await page.goto(`${base}/?folder=${encodeURIComponent(dirs.workspace)}`);
  await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'notes.md' }).first().waitFor({ timeout: 90_000 });
  log('workbench ready');

  await scenario('status', async () => {
    // The extension activates on startup; its status item names the model and where it runs.
    await until(async () => /DiffusionVL|default/.test(await statusItem().innerText()), 'the status bar item', 60_000);
    await until(async () => !/no model|\$\(error\)/.test(await statusItem().innerText()), 'a configured model', 30_000);
    await palette('DiffusionVL: Show Status');
    await quickInput().locator('.monaco-list-row', { hasText: 'Runs on' }).waitFor({ timeout: 30_000 });
    await shot('01-status');
    await page.keyboard.press('Escape');
  });

  await scenario('ask', async () => {
    await palette('DiffusionVL: Ask About Image…');
    await pickInQuickInput('flow.png');
    await pickInQuickInput('Which box does the arrow point to?', 'Which box does the arrow point to?');
    const frame = await answerFrame();
    // Streaming: at least one committed block shows before the answer is done.
    await frame.locator('.exchange .answer .block').first().waitFor({ timeout: 180_000 });
    await shot('02-ask-streaming');
    await frame.locator('.exchange.done').first().waitFor({ timeout: 180_000 });
    const answer = (await frame.locator('.exchange.done .answer').first().innerText()).trim();
    log(`  answer: ${JSON.stringify(answer.slice(0, 120))}`);
    // The default model was trained on such diagrams: the arrow in flow.png points from H to B.
    if (answer !== 'B') throw new Error(`expected the answer "B", got ${JSON.stringify(answer)}`);
    await shot('03-ask-answer');
  });

  await scenario('describe', async () => {
    const editor = await openFile('src/app.py');
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    await palette('DiffusionVL: Describe Image and Insert');
    await pickInQuickInput('flow.png');
    // A comment in Python's syntax appears at the cursor (and, with auto save, on disk).
    const inserted = await until(() => {
      const lines = read('src/app.py').split('\n').slice(6).filter((l) => l.trim());
      return lines.length && lines.every((l) => l.trim().startsWith('#')) && lines.join('\n');
    }, 'the description comment in src/app.py', 180_000);
    log(`  inserted: ${JSON.stringify(inserted.slice(0, 120))}`);
    if (!/# an arrow from H to B/.test(inserted)) throw new Error(`unexpected description comment ${JSON.stringify(inserted)}`);
    await until(async () => (await editorText(editor)).includes(inserted.split('\n')[0].trim().slice(0, 20)), 'the comment in the editor', 10_000);
    await shot('04-describe-insert');
  });

  await scenario('hover', async () => {
    const editor = await openFile('notes.md');
    const ref = editor.locator('.view-line span', { hasText: 'images/flow.png' }).first();
    await ref.hover();
    const hover = page.locator('.monaco-hover', { hasText: 'DiffusionVL' });
    await until(async () => {
      if (await hover.isVisible()) return true;
      await page.mouse.move(0, 0);
      await ref.hover();
      return false;
    }, 'the hover', 180_000, 15_000);
    const hoverText = await hover.innerText();
    if (!/an arrow from H to B/.test(hoverText)) throw new Error(`unexpected hover ${JSON.stringify(hoverText)}`);
    await shot('05-hover');
    await page.keyboard.press('Escape');
  });

  await scenario('quickfix', async () => {
    const editor = await openFile('notes.md');
    await editor.locator('.view-line span', { hasText: 'images/flow.png' }).first().click();
    await page.keyboard.press('Control+.');
    const item = page.locator('.action-widget .monaco-list-row', { hasText: /alt text/i }).first();
    await item.waitFor({ timeout: 60_000 });
    await shot('06-quickfix-menu');
    // Keyboard, as a user would: move the focus to the alt-text fix and apply it.
    const focused = page.locator('.action-widget .monaco-list-row.focused');
    await until(async () => {
      if (/alt text/i.test(await focused.innerText().catch(() => ''))) return true;
      await page.keyboard.press('ArrowDown');
      return false;
    }, 'the alt-text fix to be focused', 10_000, 150);
    await page.keyboard.press('Enter');
    const line = await until(() => read('notes.md').split('\n').find((l) => /^!\[[^\]]+\]\(images\/flow\.png\)/.test(l)), 'alt text in notes.md', 180_000);
    log(`  fixed: ${line}`);
    if (!line.startsWith('![an arrow from H to B](')) throw new Error(`unexpected alt text in ${line}`);
    await until(async () => (await editorText(editor)).includes(line.slice(0, 15)), 'the fixed line in the editor', 10_000);
    await shot('07-quickfix-applied');
  });

  await scenario('paste', async () => {
    const editor = await openFile('pasted.md');
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+End');
    const b64 = fs.readFileSync(path.join(REPO, 'test', 'e2e', 'fixtures', 'clipboard.png')).toString('base64');
    // A paste event carrying an image file, as the browser produces for a screenshot on the clipboard.
    await page.evaluate((data) => {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
      const target = document.activeElement || document.body;
      target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, b64);
    const line = await until(() => read('pasted.md').split('\n').find((l) => /^!\[.*\]\(image(-\d+)?\.png\)/.test(l)), 'the pasted image link in pasted.md', 180_000);
    const saved = line.match(/\((image(?:-\d+)?\.png)\)/)[1];
    if (!fs.existsSync(ws(saved))) throw new Error(`${saved} was not saved in the workspace`);
    if (!/^!\[a bar chart with 4 bars\]/.test(line)) throw new Error(`unexpected description in ${line}`);
    log(`  pasted: ${line}`);
    await shot('08-paste-with-description');
  });

  await scenario('restart', async () => {
    const before = await until(() => sidecarPids()[0], 'the sidecar process', 30_000);
    // Kill it in the middle of a request: the request must fail cleanly, and the next one must work.
    await useModel(LONG_MODEL, { 'diffusionvl.maxNewTokens': 1024, 'diffusionvl.steps': 32 });
    await palette('DiffusionVL: Ask About Image…');
    await pickInQuickInput('flow.png');
    await pickInQuickInput('Describe every detail of this picture.', 'Describe every detail');
    const frame = await answerFrame();
    await frame.locator('.exchange.running').first().waitFor({ timeout: 30_000 });
    await sleep(500);
    process.kill(before, 'SIGKILL');
    log(`  killed sidecar ${before}`);
    await frame.locator('.exchange.failed').first().waitFor({ timeout: 60_000 });
    const message = await frame.locator('.exchange.failed .state').first().innerText();
    log(`  in-flight request failed with: ${message}`);
    const after = await until(() => sidecarPids().find((p) => p !== before), 'a restarted sidecar', 60_000);
    log(`  restarted as ${after}`);
    await useModel(MODEL);
    await sleep(1000);
    await shot('09-sidecar-killed');
    const done = await frame.locator('.exchange.done').count();
    await frame.locator('#question').fill('Describe the image.');
    await frame.locator('#ask button').click();
    await until(async () => (await frame.locator('.exchange.done').count()) > done, 'an answer after the restart', 180_000);
    const after2 = (await frame.locator('.exchange.done .answer').last().innerText()).trim();
    if (after2 !== 'an arrow from H to B') throw new Error(`unexpected answer after the restart: ${JSON.stringify(after2)}`);
    await shot('10-after-restart');
  });

  await scenario('cancel', async () => {
    await useModel(LONG_MODEL, { 'diffusionvl.maxNewTokens': 2048, 'diffusionvl.steps': 64 });
    const frame = await answerFrame();
    const cancelled = await frame.locator('.exchange.cancelled').count();
    await frame.locator('#question').fill('Write a long story about this diagram.');
    await frame.locator('#ask button').click();
    const running = frame.locator('.exchange.running').first();
    await running.waitFor({ timeout: 30_000 });
    await sleep(300);
    await running.locator('button.cancel').click();
    await until(async () => (await frame.locator('.exchange.cancelled').count()) > cancelled, 'the cancelled state', 60_000);
    writeSettings();
    await shot('11-cancelled');
  });

  /** Has the harness extension send `request` to our chat handler and tool (see test/e2e/harness/extension.js). */
  async function harness(request) {
    fs.rmSync(ws('e2e-result.json'), { force: true });
    fs.writeFileSync(ws('e2e-request.json'), JSON.stringify(request));
    await palette('E2E: Run Chat Requests');
    const res = await until(() => fs.existsSync(ws('e2e-result.json')) && JSON.parse(read('e2e-result.json')), 'the harness results', 180_000, 500);
    if (res.error) throw new Error(`harness failed: ${res.error}`);
    log(`  ${JSON.stringify({ chat: res.chat, tool: res.tool }).slice(0, 600)}`);
    return res;
  }
  const outsideImage = path.join(WORK, 'outside.png');
  fs.copyFileSync(path.join(REPO, 'test', 'e2e', 'fixtures', 'clipboard.png'), outsideImage);

  await scenario('lmtool', async () => {
    // Agents reach the model through the language-model tool; the running sidecar answers (no second model).
    await useModel(MODEL);
    const res = await harness({ tool: [
      { image: 'images/flow.png', question: 'Which box does the arrow point to?' },
      { image: outsideImage, question: 'Describe the image.' },
    ] });
    if (!res.tools.includes('diffusionvl_askImage') || !res.toolInfo?.inputSchema?.required?.includes('image')) throw new Error(`diffusionvl_askImage is not among vscode.lm.tools: ${res.tools.join(', ')}`);
    const [inside, outside] = res.tool;
    // The same answer the Ask panel gives for this image and question.
    if (inside.text !== 'B') throw new Error(`expected the tool to answer "B", got ${JSON.stringify(inside)}`);
    if (res.completedAfter !== res.completedBefore + 1) throw new Error(`the sidecar finished ${res.completedAfter - res.completedBefore} requests, expected 1`);
    if (!/outside the workspace folders/.test(outside.error ?? '')) throw new Error(`an image outside the workspace was not refused: ${JSON.stringify(outside)}`);
  });

  await scenario('chat', async () => {
    await useModel(MODEL);
    const res = await harness({
      chat: [
        // An image path written in the prompt.
        { prompt: 'images/flow.png Which box does the arrow point to?', command: 'ask' },
        // An attached image outside the workspace…
        { prompt: '', command: 'describe', attach: [outsideImage] },
      ],
      // …which the tool may then read, because the user attached it.
      tool: [{ image: outsideImage, question: 'Describe the image.' }],
    });
    const [ask, describe] = res.chat;
    if (ask.markdown.join('') !== 'B' || !ask.references.some((r) => r.endsWith('/images/flow.png'))) throw new Error(`unexpected /ask response ${JSON.stringify(ask)}`);
    if (!ask.progress.some((p) => p.includes('images/flow.png'))) throw new Error(`no progress naming the image: ${JSON.stringify(ask.progress)}`);
    if (describe.markdown.join('') !== 'a bar chart with 4 bars') throw new Error(`unexpected /describe response ${JSON.stringify(describe)}`);
    if (res.tool[0].text !== 'a bar chart with 4 bars') throw new Error(`the tool did not read the attached image: ${JSON.stringify(res.tool[0])}`);
    if (res.completedAfter !== res.completedBefore + 3) throw new Error(`the sidecar finished ${res.completedAfter - res.completedBefore} requests, expected 3`);

    // Streaming: a 4-block answer arrives as several pieces, which together are the answer.
    await useModel(LONG_MODEL, { 'diffusionvl.maxNewTokens': 32 });
    const long = (await harness({ chat: [{ prompt: 'What is this?', command: 'ask', attach: [ws('images', 'flow.png')] }] })).chat[0];
    if (long.error || long.result?.errorDetails) throw new Error(`long answer failed: ${JSON.stringify(long)}`);
    if (long.result.metadata.stats.generatedTokens !== 32 || long.markdown.length < 2) throw new Error(`expected the answer in several pieces: ${JSON.stringify(long)}`);
    await useModel(MODEL);
  });

  await scenario('walkthrough', async () => {
    await palette('DiffusionVL: Get Started');
    await page.locator('.gettingStartedContainer', { hasText: 'Get started with DiffusionVL' }).waitFor({ timeout: 30_000 });
    await shot('12-walkthrough');
  });

  // Last: it restarts code-server with workspace trust on and opens the workspace in Restricted Mode.
  await scenario('restricted', async () => {
    await page.close();
    await stopCodeServer();
    writeSettings({ 'security.workspace.trust.enabled': true });
    cs = startCodeServer(true);
    await until(async () => (await fetch(`${base}/healthz`)).ok, 'code-server', 90_000);
    page = await context.newPage();
    await page.goto(`${base}/?folder=${encodeURIComponent(dirs.workspace)}`);
    await page.locator('.monaco-dialog-box .monaco-button', { hasText: /don.t trust/i }).first().click({ timeout: 90_000 });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'notes.md' }).first().waitFor({ timeout: 90_000 });
    await until(async () => !/no model|\$\(error\)/.test(await statusItem().innerText()), 'the status bar item', 60_000);
    fs.copyFileSync(path.join(REPO, 'test', 'e2e', 'fixtures', 'clipboard.png'), ws('images', 'chart.png'));
    const res = await harness({
      chat: [{ prompt: '', command: 'describe', attach: [ws('images', 'flow.png')] }],
      tool: [
        { image: 'images/flow.png', question: 'Which box does the arrow point to?' },
        { image: 'images/chart.png', question: 'How many bars are there?' },
      ],
    });
    if (res.trusted !== false) throw new Error('the workspace is not in Restricted Mode');
    if (res.chat[0].markdown.join('') !== 'an arrow from H to B') throw new Error(`unexpected /describe response ${JSON.stringify(res.chat[0])}`);
    // The harness sends chat requests before tool calls: the tool reads the image the user attached…
    if (res.tool[0].text !== 'B') throw new Error(`the tool did not read the attached image: ${JSON.stringify(res.tool[0])}`);
    // …and refuses a workspace image nobody attached.
    if (!/Restricted Mode/.test(res.tool[1].error ?? '')) throw new Error(`an unattached image was read in Restricted Mode: ${JSON.stringify(res.tool[1])}`);
    if (res.completedAfter !== res.completedBefore + 2) throw new Error(`the sidecar finished ${res.completedAfter - res.completedBefore} requests, expected 2`);
    await shot('restricted-mode');
  });

  exitCode = results.every((r) => r.ok) && results.length ? 0 : 1;
} catch (err) {
  console.error('e2e: aborted:', err);
  await page?.screenshot({ path: path.join(ARTIFACTS, 'FAILED-setup.png') }).catch(() => {});
} finally {
  await browser?.close().catch(() => {});
  await stopCodeServer();
  // The extension's log output (server log included) is kept with the screenshots.
  for (const f of findFiles(path.join(dirs.userData, 'logs'), /DiffusionVL\.log$|exthost\.log$/)) fs.copyFileSync(f, path.join(ARTIFACTS, path.basename(path.dirname(f)) + '-' + path.basename(f)));
  fs.writeFileSync(path.join(ARTIFACTS, 'results.json'), JSON.stringify({ results, seconds: (Date.now() - T0) / 1000 }, null, 2));
  if (!process.env.E2E_KEEP) fs.rmSync(WORK, { recursive: true, force: true });
  // The README's pictures are this suite's screenshots: E2E_UPDATE_SCREENSHOTS=1 refreshes media/screenshots/.
  if (process.env.E2E_UPDATE_SCREENSHOTS === '1' && exitCode === 0) {
    const dest = path.join(REPO, 'media', 'screenshots');
    fs.mkdirSync(dest, { recursive: true });
    for (const f of fs.readdirSync(ARTIFACTS)) if (/^\d\d-.*\.png$/.test(f)) fs.copyFileSync(path.join(ARTIFACTS, f), path.join(dest, f));
  }
  const passed = results.filter((r) => r.ok).length;
  for (const r of results) console.log(`${r.ok ? 'ok' : 'FAIL'} ${r.name}${r.ok ? '' : `\n${r.error}`}`);
  console.log(`e2e: ${passed} passed, ${results.length - passed} failed`);
  process.exit(exitCode);
}

function findFiles(dir, re, out = []) {
  let entries = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) findFiles(p, re, out);
    else if (re.test(e.name)) out.push(p);
  }
  return out;
}
