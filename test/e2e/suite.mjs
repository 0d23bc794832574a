/* global fetch, document, window, DataTransfer, File, ClipboardEvent, atob, MutationObserver */
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
// The shipped demo model's folder. Chosen by path it is still the demo model (its label and marks stay): the
// scenarios that need a real model which answers like the demo one use MODEL, the same trained weights under
// another identity (a copy whose manifest says it is a copy, so it is not byte-for-byte the demo model's).
const DEMO_DIR = path.join(REPO, 'models', 'default');
const MODEL = process.env.E2E_MODEL || path.join(CACHE, 'fixtures', 'trained');
if (!process.env.E2E_MODEL) {
  fs.rmSync(MODEL, { recursive: true, force: true });
  fs.cpSync(DEMO_DIR, MODEL, { recursive: true });
  const manifest = JSON.parse(fs.readFileSync(path.join(DEMO_DIR, 'manifest.json'), 'utf8'));
  fs.writeFileSync(path.join(MODEL, 'manifest.json'), JSON.stringify({ ...manifest, copiedFor: 'e2e: the demo weights as a user-chosen model' }, null, 2));
}
// The default model answers in a block or two; the restart and cancel scenarios need a generation that runs long
// enough to interrupt, so they switch to the random-weight tiny model (it never emits EOS). setup.sh records it.
const LONG_MODEL = process.env.E2E_LONG_MODEL || fs.readFileSync(path.join(CACHE, 'long-model.path'), 'utf8').trim();
// The tiny model with a GGUF decoder beside its ONNX one, for the llama.cpp libraries the .vsix carries (setup.sh).
const LLAMA_MODEL = process.env.E2E_LLAMA_MODEL || fs.readFileSync(path.join(CACHE, 'llama-model.path'), 'utf8').trim();
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
for (const f of [VSIX, CODE_SERVER, path.join(MODEL, 'manifest.json'), path.join(LONG_MODEL, 'manifest.json'), path.join(LLAMA_MODEL, 'manifest.json')]) {
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
// Generated inputs: eight distinct images for the panel-group check, a PNG cut in half, and a 12000×9000 PNG
// (a 112×112 synthetic bar chart scaled up; cached, it takes a few seconds to make).
const FLOW = fs.readFileSync(ws('images', 'flow.png'));
fs.mkdirSync(ws('images', 'many'), { recursive: true });
for (let i = 1; i <= 8; i++) fs.writeFileSync(ws('images', 'many', `diagram-${i}.png`), FLOW);
fs.writeFileSync(ws('images', 'truncated.png'), FLOW.subarray(0, FLOW.length >> 1));
// An image of its own for the llama-cpp scenario, so that its answer panel is a new one.
fs.writeFileSync(ws('images', 'llama.png'), FLOW);
const HUGE = path.join(CACHE, 'fixtures', 'chart-12000x9000.png');
if (!fs.existsSync(HUGE)) {
  const sharp = createRequire(path.join(REPO, 'package.json'))('sharp');
  fs.mkdirSync(path.dirname(HUGE), { recursive: true });
  await sharp(path.join(REPO, 'media', 'examples', 'chart-1.png')).resize(12000, 9000, { fit: 'fill', kernel: 'nearest' }).png().toFile(HUGE + '.tmp');
  fs.renameSync(HUGE + '.tmp', HUGE);
}
fs.copyFileSync(HUGE, ws('images', 'chart-12000x9000.png'));

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
  // No DiffusionVL settings: the first run uses the demo model shipped in the .vsix, as a new user's would.
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
/** Settings of the everyday scenarios after the first run: hovers turned on (they are off with the demo model). */
let everyday = {};
/**
 * Writes settings that select `model` (DEMO: the one shipped in the .vsix), and waits until the status bar names it
 * (the server has the new settings).
 */
const DEMO = 'demo';
async function useModel(model, extra = {}) {
  writeSettings(model === DEMO ? { ...everyday, ...extra } : { ...everyday, 'diffusionvl.modelPath': model, ...extra });
  const name = model === DEMO ? 'DiffusionVL demo' : path.basename(model);
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

/** Opens a quick input with `key`. A webview that is just taking the focus (a panel opening) can swallow the key: press it again. */
async function openQuickInput(key) {
  await until(async () => {
    await page.keyboard.press(key);
    return quickInputBox().waitFor({ state: 'visible', timeout: 4_000 }).then(() => true, () => false);
  }, `the quick input (${key})`, 30_000, 0);
}

/** Runs a command from the palette (F1), waiting until it is the focused row. */
async function palette(title) {
  await openQuickInput('F1');
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
  await openQuickInput('Control+P');
  await pickInQuickInput(rel, path.basename(rel));
  await page.locator('.tab.active', { hasText: path.basename(rel) }).waitFor();
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.locator('.view-lines').waitFor();
  return editor;
}

const editorText = async (editor) => (await editor.locator('.view-lines').innerText()).replace(/\u00a0/g, ' ');
const read = (rel) => fs.readFileSync(ws(rel), 'utf8');

/** The frame of the answer panel whose image caption contains `label` (several panels can be open). */
async function answerFrameFor(label) {
  return until(async () => {
    for (const f of page.frames()) {
      const caption = await f.locator('#caption').textContent({ timeout: 200 }).catch(() => null);
      if (caption !== null && caption.includes(label)) return f;
    }
    return undefined;
  }, `the answer panel for ${label}`, 90_000);
}

async function askViaPalette(image, question) {
  // A panel that is still loading can take the focus and close the picker: start over when that happens.
  const pick = async (text) => {
    await quickInputBox().waitFor({ state: 'visible', timeout: 5_000 });
    await quickInputBox().fill(text, { timeout: 5_000 });
    await quickInput().locator('.monaco-list-row.focused', { hasText: text }).waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
  };
  await until(async () => {
    try {
      await palette('DiffusionVL: Ask About Image…');
      await pick(image);
      await pick(question);
      return true;
    } catch {
      await page.keyboard.press('Escape');
      return false;
    }
  }, `asking ${JSON.stringify(question)} about ${image}`, 90_000, 500);
}

/** Asks a follow-up question in a panel; resolves with the finished exchange. */
async function askInPanel(frame, question) {
  const before = await frame.locator('.exchange').count();
  await frame.locator('#question').fill(question);
  await frame.locator('#ask button').click();
  const ex = frame.locator('.exchange').nth(before);
  await until(async () => /\b(done|failed|cancelled)\b/.test((await ex.getAttribute('class')) ?? ''), `the answer to ${JSON.stringify(question)}`, 180_000);
  return ex;
}

/** Hovers over an editor element until our hover shows; returns its text. */
async function hoverOver(target) {
  await target.hover();
  const hover = page.locator('.monaco-hover', { hasText: 'DiffusionVL' });
  await until(async () => {
    if (await hover.isVisible()) return true;
    await page.mouse.move(0, 0);
    await target.hover();
    return false;
  }, 'the hover', 180_000, 15_000);
  return hover.innerText();
}

/** Opens the quick-fix menu at the cursor and applies "Generate alt text" with the keyboard, as a user would. */
async function applyAltTextFix(screenshot) {
  await page.keyboard.press('Control+.');
  const item = page.locator('.action-widget .monaco-list-row', { hasText: /alt text/i }).first();
  await item.waitFor({ timeout: 60_000 });
  if (screenshot) await shot('09-quickfix-menu');
  const focused = page.locator('.action-widget .monaco-list-row.focused');
  await until(async () => {
    if (/alt text/i.test(await focused.innerText().catch(() => ''))) return true;
    await page.keyboard.press('ArrowDown');
    return false;
  }, 'the alt-text fix to be focused', 10_000, 150);
  await page.keyboard.press('Enter');
}

/**
 * Opens Show Status and returns the text of the row labelled `label` (whitespace collapsed), leaving the pick open.
 * A quick pick closes when focus moves (an answer panel finishing its drawing can take it): it is opened once more,
 * so that what is checked is the status, not the race. Seen once in a full run, never alone.
 */
async function statusRow(label) {
  const row = quickInput().locator('.monaco-list-row', { hasText: label });
  await palette('DiffusionVL: Show Status');
  try {
    await row.waitFor({ timeout: 15_000 });
  } catch {
    log('  the status pick closed before it was read; opening it again');
    await page.keyboard.press('Escape');
    await palette('DiffusionVL: Show Status');
    await row.waitFor({ timeout: 15_000 });
  }
  return (await row.innerText()).replace(/\s+/g, ' ');
}

/** "N done" from Show Status' Requests row: how many requests the model has answered. */
async function requestsDone() {
  const m = /(\d+) done/.exec(await statusRow('Requests'));
  await page.keyboard.press('Escape');
  if (!m) throw new Error('no request count in Show Status');
  return Number(m[1]);
}

/** A paste event carrying an image file, as the browser produces for a screenshot on the clipboard. */
async function pasteImage(fixture) {
  const b64 = fs.readFileSync(path.join(REPO, 'test', 'e2e', 'fixtures', fixture)).toString('base64');
  await page.evaluate((data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
    const target = document.activeElement || document.body;
    target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, b64);
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
  // Every text the status bar item shows from the first frame on (the first-run scenario checks them).
  await context.addInitScript(() => {
    window.__statusTexts = [];
    new MutationObserver(() => {
      const el = document.querySelector('.statusbar-item[id$="diffusionvl.status"]');
      const text = el?.innerText;
      if (text && window.__statusTexts.at(-1) !== text) window.__statusTexts.push(text);
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  page = await context.newPage();
  page.on('pageerror', (e) => log(`[pageerror] ${e.message}`));
  await page.goto(`${base}/?folder=${encodeURIComponent(dirs.workspace)}`);
  await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'notes.md' }).first().waitFor({ timeout: 90_000 });
  log('workbench ready');

  await scenario('first-run', async () => {
    // Nothing configured: the .vsix's own demo model, labelled as such, and the walkthrough opens once by itself.
    await until(async () => /DiffusionVL demo/.test(await statusItem().innerText()), 'the status bar to name the demo model', 90_000);
    // From its first frame the item names what will answer: never "no model" while the demo model ships inside.
    const texts = await page.evaluate(() => window.__statusTexts);
    log(`  status bar texts: ${JSON.stringify(texts)}`);
    if (texts.some((t) => /no model|^\s*DiffusionVL\s*$/.test(t))) throw new Error(`the status bar said something other than what answers: ${JSON.stringify(texts)}`);
    await page.locator('.gettingStartedContainer', { hasText: 'Get started with DiffusionVL' }).waitFor({ timeout: 30_000 });
    await shot('00-first-run-walkthrough');
    await palette('DiffusionVL: Try an Example');
    // Clicked, not Enter: the walkthrough page re-renders as its step completes and may hold the keyboard focus.
    await quickInputBox().waitFor({ state: 'visible' });
    await quickInputBox().fill('Which box does the arrow point to?');
    await quickInput().locator('.monaco-list-row', { hasText: 'arrow-1.png' }).first().click({ timeout: 30_000 });
    const frame = await answerFrameFor('example arrow-1.png');
    await frame.locator('.exchange.done').first().waitFor({ timeout: 120_000 });
    const answer = (await frame.locator('.exchange.done .answer').first().innerText()).trim();
    if (answer !== 'E') throw new Error(`expected the demo model to answer "E" about arrow-1.png, got ${JSON.stringify(answer)}`);
    // The demo mark: on the answer, and the banner with the way to a real model.
    await frame.locator('.exchange.done .badge.demo').first().waitFor({ timeout: 5_000 });
    const banner = frame.locator('#demo');
    if (!(await banner.isVisible()) || !/synthetic diagrams/.test(await banner.innerText())) throw new Error('the demo banner is not shown');
    await shot('01-first-run-example');
  });

  await scenario('status', async () => {
    const text = await statusRow('Runs on');
    log(`  runs on: ${text}`);
    // In the user's words: no developer commands, no bare provider jargon.
    if (/npm run|not loaded|auto —/.test(text)) throw new Error(`developer wording in the status: ${text}`);
    if (!/first question|Runs on the/.test(text)) throw new Error(`no explanation of where the model runs: ${text}`);
    await shot('02-status');
    await page.keyboard.press('Escape');
  });

  await scenario('ask', async () => {
    await askViaPalette('flow.png', 'Which box does the arrow point to?');
    const frame = await answerFrameFor('images/flow.png');
    // Streaming: at least one committed block shows before the answer is done.
    await frame.locator('.exchange .answer .block').first().waitFor({ timeout: 180_000 });
    await shot('03-ask-streaming');
    await frame.locator('.exchange.done').first().waitFor({ timeout: 180_000 });
    const answer = (await frame.locator('.exchange.done .answer').first().innerText()).trim();
    log(`  answer: ${JSON.stringify(answer.slice(0, 120))}`);
    // The default model was trained on such diagrams: the arrow in flow.png points from H to B.
    if (answer !== 'B') throw new Error(`expected the answer "B", got ${JSON.stringify(answer)}`);
    await shot('04-ask-answer');
  });

  await scenario('empty-answer', async () => {
    // The demo model answers a greeting with blank space: the panel says so and suggests what to do.
    const frame = await answerFrameFor('images/flow.png');
    const ex = await askInPanel(frame, 'Hello');
    const note = ex.locator('.empty-note');
    await note.waitFor({ timeout: 10_000 });
    const text = await note.innerText();
    log(`  empty answer note: ${JSON.stringify(text.slice(0, 200))}`);
    if (!/nothing to say|without writing any text/.test(text)) throw new Error(`no reason given for the empty answer: ${text}`);
    if ((await note.locator('button').count()) < 1) throw new Error('no suggestion offered for the empty answer');
    await shot('05-empty-answer');
  });

  await scenario('walkthrough', async () => {
    await palette('DiffusionVL: Get Started');
    await page.locator('.gettingStartedContainer', { hasText: 'Get started with DiffusionVL' }).waitFor({ timeout: 30_000 });
    const step = page.locator('.getting-started-step[data-step-id$="model"]').first();
    await step.waitFor({ timeout: 10_000 });
    if ((await step.getAttribute('aria-checked')) === 'true') throw new Error('"Get a real model" is complete while only the demo model is there');
    // Choosing a model folder (here: the same trained model, by path) completes the step.
    await useModel(MODEL);
    await until(async () => (await step.getAttribute('aria-checked')) === 'true', 'the "Get a real model" step to complete', 30_000);
    await shot('14-walkthrough');
    // The shipped demo folder chosen by path is still the demo model: its label stays.
    writeSettings({ ...everyday, 'diffusionvl.modelPath': DEMO_DIR });
    await until(async () => /DiffusionVL demo/.test(await statusItem().innerText()), 'the demo label for the demo folder chosen by path', 60_000, 500);
    // Closed, as a user would: an open walkthrough re-renders (and takes the focus) whenever its context keys change.
    const tab = page.locator('.tab', { hasText: 'Walkthrough: DiffusionVL' }).first();
    await tab.hover();
    await tab.locator('.tab-actions .action-label').first().click();
    await page.locator('.gettingStartedContainer').waitFor({ state: 'detached', timeout: 10_000 });
    await useModel(DEMO);
  });

  await scenario('streaming', async () => {
    // A 16-token answer (two 8-token blocks) from the long-generating model: the panel must show it forming.
    await useModel(LONG_MODEL, { 'diffusionvl.maxNewTokens': 16 });
    const frame = await answerFrameFor('images/flow.png');
    await frame.evaluate(() => {
      window.__states = [];
      const record = () => {
        const last = [...document.querySelectorAll('.exchange')].pop();
        if (last?.classList.contains('running')) window.__states.push(last.querySelector('.answer').textContent);
      };
      new MutationObserver(record).observe(document.getElementById('exchanges'), { subtree: true, childList: true, characterData: true });
    });
    await askInPanel(frame, 'Describe every detail of this picture.');
    const states = [...new Set(await frame.evaluate(() => window.__states.filter((t) => t.trim())))];
    log(`  partial states seen: ${states.length}`);
    if (states.length < 2) throw new Error(`expected at least two partial states of a 16-token answer, saw ${JSON.stringify(states)}`);
    await useModel(DEMO);
  });

  await scenario('panels', async () => {
    // Eight images asked about: one panel each, all tabs of one group beside the editor.
    for (let i = 1; i <= 8; i++) {
      await askViaPalette(`diagram-${i}.png`, 'Describe the image.');
      await page.locator('.tab', { hasText: `diagram-${i}.png` }).first().waitFor({ timeout: 30_000 });
    }
    await (await answerFrameFor('images/many/diagram-8.png')).locator('.exchange.done').first().waitFor({ timeout: 120_000 });
    const groups = await page.locator('.editor-group-container').count();
    log(`  editor groups after 8 asks: ${groups}`);
    await shot('06-panels');
    if (groups > 2) throw new Error(`8 asks left ${groups} editor groups (at most 2 expected)`);
  });

  await scenario('svg', async () => {
    await palette('DiffusionVL: Ask About Image…');
    // Offered in the picker like any other image.
    await pickInQuickInput('diagram.svg');
    await pickInQuickInput('Describe the image.', 'Describe the image.');
    const frame = await answerFrameFor('images/diagram.svg');
    await frame.locator('.exchange.done, .exchange.failed').first().waitFor({ timeout: 120_000 });
    if (await frame.locator('.exchange.failed').count()) throw new Error(`the SVG was not answered: ${await frame.locator('.exchange.failed .state').first().innerText()}`);
  });

  await scenario('describe', async () => {
    await palette('Notifications: Clear All Notifications').catch(() => {});
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
    // Text the demo model wrote into a document is announced as such.
    await page.locator('.notification-toast', { hasText: 'written by the demo model' }).first().waitFor({ timeout: 10_000 });
    await shot('07-describe-insert');
  });

  await scenario('hover', async () => {
    // Hovers are off with the demo model unless the user turns them on.
    everyday = { 'diffusionvl.hover.enabled': true };
    writeSettings(everyday);
    await sleep(1500);
    const editor = await openFile('notes.md');
    const hoverText = await hoverOver(editor.locator('.view-line span', { hasText: 'images/flow.png' }).first());
    if (!/an arrow from H to B/.test(hoverText)) throw new Error(`unexpected hover ${JSON.stringify(hoverText)}`);
    if (!/Demo model/i.test(hoverText)) throw new Error(`the hover does not say it comes from the demo model: ${JSON.stringify(hoverText)}`);
    await shot('08-hover');
    await page.keyboard.press('Escape');
  });

  await scenario('quickfix', async () => {
    const editor = await openFile('notes.md');
    await editor.locator('.view-line span', { hasText: 'images/flow.png' }).first().click();
    await applyAltTextFix(true);
    const line = await until(() => read('notes.md').split('\n').find((l) => /^!\[[^\]]+\]\(images\/flow\.png\)/.test(l)), 'alt text in notes.md', 180_000);
    log(`  fixed: ${line}`);
    if (!line.startsWith('![an arrow from H to B](')) throw new Error(`unexpected alt text in ${line}`);
    await until(async () => (await editorText(editor)).includes(line.slice(0, 15)), 'the fixed line in the editor', 10_000);
    await shot('10-quickfix-applied');
  });

  await scenario('reference-image', async () => {
    // ![][flowref] with `[flowref]: images/flow.png` further down.
    const editor = await openFile('notes.md');
    const usage = editor.locator('.view-line', { hasText: '![][flowref]' }).locator('span', { hasText: 'flowref' }).first();
    const hoverText = await hoverOver(usage);
    if (!/an arrow from H to B/.test(hoverText)) throw new Error(`unexpected hover on the reference-style image: ${JSON.stringify(hoverText)}`);
    await page.keyboard.press('Escape');
    await usage.click();
    await applyAltTextFix(false);
    const line = await until(() => read('notes.md').split('\n').find((l) => /^!\[[^\]]+\]\[flowref\]/.test(l)), 'alt text on the reference-style image', 180_000);
    log(`  fixed: ${line}`);
    if (line !== '![an arrow from H to B][flowref]') throw new Error(`unexpected alt text in ${line}`);
  });

  await scenario('paste-plain', async () => {
    // A plain Ctrl+V keeps VS Code's own behaviour: the image saved and linked, no model run.
    const before = await requestsDone();
    const editor = await openFile('pasted.md');
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+End');
    await pasteImage('clipboard.png');
    const line = await until(() => read('pasted.md').split('\n').find((l) => /^!\[[^\]]*\]\([^)]*\.png\)/.test(l)), 'VS Code\'s image link in pasted.md', 60_000);
    log(`  pasted: ${line}`);
    if (/bar chart/.test(line)) throw new Error(`a plain paste ran the model: ${line}`);
    const saved = decodeURIComponent(line.match(/\]\(([^)]*\.png)\)/)[1]);
    await until(() => fs.existsSync(ws(saved)), `${saved} saved in the workspace`, 10_000);
    await sleep(2000);
    const after = await requestsDone();
    if (after !== before) throw new Error(`the model ran during a plain paste (${before} → ${after} requests done)`);
    await shot('11-paste-plain');
  });

  await scenario('paste', async () => {
    // The described paste is one click away: the paste widget after a plain paste offers it.
    const editor = await openFile('pasted.md');
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    const plain = read('pasted.md').split('\n').filter((l) => l.startsWith('![')).length;
    await pasteImage('clipboard.png');
    await until(() => read('pasted.md').split('\n').filter((l) => l.startsWith('![')).length > plain, 'the pasted link', 60_000);
    await page.locator('.post-edit-widget .monaco-button, .post-edit-widget button').first().click({ timeout: 15_000 });
    const option = page.locator('.action-widget .monaco-list-row', { hasText: 'Insert image with generated description' }).first();
    await option.waitFor({ timeout: 15_000 });
    const focused = page.locator('.action-widget .monaco-list-row.focused');
    await until(async () => {
      if (/generated description/.test(await focused.innerText().catch(() => ''))) return true;
      await page.keyboard.press('ArrowDown');
      return false;
    }, 'the described paste option to be focused', 10_000, 150);
    await shot('12-paste-options');
    await page.keyboard.press('Enter');
    const line = await until(() => read('pasted.md').split('\n').find((l) => /^!\[a bar chart/.test(l)), 'the described image link in pasted.md', 180_000);
    const saved = line.match(/\((image(?:-\d+)?\.png)\)/)?.[1];
    if (!saved) throw new Error(`no image file in ${line}`);
    await until(() => fs.existsSync(ws(saved)), `${saved} saved in the workspace`, 10_000);
    if (!/^!\[a bar chart with 4 bars\]/.test(line)) throw new Error(`unexpected description in ${line}`);
    log(`  pasted: ${line}`);
    await shot('12-paste-with-description');
  });

  await scenario('bad-image', async () => {
    await palette('Notifications: Clear All Notifications').catch(() => {});
    await askViaPalette('truncated.png', 'Describe the image.');
    const frame = await answerFrameFor('images/truncated.png');
    const state = frame.locator('.exchange.failed .state').first();
    await state.waitFor({ timeout: 60_000 });
    const message = await state.innerText();
    const first = message.split('\n')[0];
    log(`  message: ${JSON.stringify(message)}`);
    if (first.includes(dirs.workspace) || /[\\/]/.test(first) || /vips|libpng|sharp|decoder|png:/i.test(first)) throw new Error(`path or library jargon in the message: ${first}`);
    if (!(await frame.locator('.exchange.failed button.fix').count())) throw new Error('no button that fixes it');
    // Once: the panel shows it, no notification repeats it.
    await sleep(1500);
    const toasts = await page.locator('.notification-toast', { hasText: /DiffusionVL/ }).count();
    if (toasts) throw new Error(`the error was also shown in ${toasts} notification(s)`);
    await shot('13-bad-image');
  });

  await scenario('large-image', async () => {
    await askViaPalette('chart-12000x9000.png', 'How many bars are there?');
    const frame = await answerFrameFor('images/chart-12000x9000.png');
    await frame.locator('.exchange.done, .exchange.failed').first().waitFor({ timeout: 180_000 });
    if (await frame.locator('.exchange.failed').count()) throw new Error(`the 12000×9000 PNG was refused: ${await frame.locator('.exchange.failed .state').first().innerText()}`);
    const answer = (await frame.locator('.exchange.done .answer').first().innerText()).trim();
    log(`  answer: ${JSON.stringify(answer)}`);
    // The chart (chart-1.png stretched to 12000×9000) has 4 bars, which the demo model still counts after shrinking.
    if (answer !== '4') throw new Error(`expected "4" about the 12000×9000 chart, got ${JSON.stringify(answer)}`);
  });

  await scenario('llama-cpp', async () => {
    // The installed .vsix runs the text decoder on the llama.cpp libraries it carries: a model folder with a GGUF
    // decoder and the backend setting on llama.cpp (the random-weight tiny model: any 8 tokens will do).
    await useModel(LLAMA_MODEL, { 'diffusionvl.backend': 'llama.cpp', 'diffusionvl.maxNewTokens': 8 });
    await askViaPalette('llama.png', 'Describe the image.');
    const frame = await answerFrameFor('images/llama.png');
    await frame.locator('.exchange.done, .exchange.failed').first().waitFor({ timeout: 180_000 });
    if (await frame.locator('.exchange.failed').count()) throw new Error(`the GGUF model did not answer: ${await frame.locator('.exchange.failed .state').first().innerText()}`);
    const answer = (await frame.locator('.exchange.done .answer').first().innerText()).trim();
    log(`  answer: ${JSON.stringify(answer)}`);
    if (!answer) throw new Error('an empty answer from the GGUF model');
    const decoder = await statusRow('Text decoder');
    log(`  text decoder: ${decoder}`);
    // The runtime that answered, and why it was chosen (the engine's reason names llama.cpp's device).
    if (!/Text decoder\s*llama\.cpp/.test(decoder) || !/llama\.cpp runs the text decoder/.test(decoder) || !/llama\.cpp requested/.test(decoder)) {
      throw new Error(`Show Status does not say that llama.cpp ran the decoder, and why: ${decoder}`);
    }
    await shot('llama-cpp-status');
    await page.keyboard.press('Escape');
    await useModel(DEMO);
  });

  await scenario('restart', async () => {
    const before = await until(() => sidecarPids()[0], 'the sidecar process', 30_000);
    // Kill it in the middle of a request: the request must fail cleanly, and the next one must work.
    await useModel(LONG_MODEL, { 'diffusionvl.maxNewTokens': 1024, 'diffusionvl.steps': 32 });
    await palette('DiffusionVL: Ask About Image…');
    await pickInQuickInput('flow.png');
    await pickInQuickInput('Describe every detail of this picture.', 'Describe every detail');
    const frame = await answerFrameFor('images/flow.png');
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
    await shot('15-sidecar-killed');
    const done = await frame.locator('.exchange.done').count();
    await frame.locator('#question').fill('Describe the image.');
    await frame.locator('#ask button').click();
    await until(async () => (await frame.locator('.exchange.done').count()) > done, 'an answer after the restart', 180_000);
    const after2 = (await frame.locator('.exchange.done .answer').last().innerText()).trim();
    if (after2 !== 'an arrow from H to B') throw new Error(`unexpected answer after the restart: ${JSON.stringify(after2)}`);
    await shot('16-after-restart');
  });

  await scenario('cancel', async () => {
    await useModel(LONG_MODEL, { 'diffusionvl.maxNewTokens': 2048, 'diffusionvl.steps': 64 });
    const frame = await answerFrameFor('images/flow.png');
    const cancelled = await frame.locator('.exchange.cancelled').count();
    await frame.locator('#question').fill('Write a long story about this diagram.');
    await frame.locator('#ask button').click();
    const running = frame.locator('.exchange.running').first();
    await running.waitFor({ timeout: 30_000 });
    await sleep(300);
    await running.locator('button.cancel').click();
    await until(async () => (await frame.locator('.exchange.cancelled').count()) > cancelled, 'the cancelled state', 60_000);
    writeSettings();
    await shot('17-cancelled');
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


  await scenario('remote-server', async () => {
    // A second `diffusionvl serve --http` on loopback, with an API key, answers instead of the local model: the
    // long-generating model, so that a 16-token answer arrives in two blocks.
    const keyFile = path.join(WORK, 'http.key');
    const key = 'e2e-shared-server-key-0123456789';
    fs.writeFileSync(keyFile, `${key}\n`);
    const httpLog = fs.openSync(path.join(ARTIFACTS, 'serve-http.log'), 'w');
    const http = spawn(process.execPath, [path.join(REPO, 'out', 'server', 'cli', 'main.js'), 'serve', '--http', '--port', '0', '--model', LONG_MODEL, '--api-key-file', keyFile], { stdio: ['ignore', 'pipe', httpLog] });
    let httpOut = '';
    http.stdout.on('data', (d) => (httpOut += d));
    try {
      const url = await until(() => /listening on (http:\/\/\S+?)[\s(]/.exec(httpOut)?.[1], 'serve --http to listen', 60_000);
      const host = new URL(url).host;
      const completed = async () => (await (await fetch(`${url}/health`, { headers: { authorization: `Bearer ${key}` } })).json()).queue.completed;
      writeSettings({ ...everyday, 'diffusionvl.server.url': url, 'diffusionvl.maxNewTokens': 16, 'diffusionvl.hover.enabled': true });
      await until(async () => (await statusItem().innerText()).includes(host), 'the status bar to name the server', 60_000, 500);
      // The key goes into VS Code's secret storage (a password box), and from there to the sidecar only.
      await palette('DiffusionVL: Set Server API Key…');
      await quickInputBox().waitFor({ state: 'visible' });
      await quickInputBox().fill(key);
      await page.keyboard.press('Enter');
      await page.locator('.notification-toast', { hasText: 'API key for' }).first().waitFor({ timeout: 30_000 });
      // Toasts sit over the panel's Ask button.
      await palette('Notifications: Clear All Notifications').catch(() => {});
      const before = await completed();

      await askViaPalette('flow.png', 'Describe the image.');
      const frame = await answerFrameFor('images/flow.png');
      await frame.locator('.exchange.done, .exchange.failed').last().waitFor({ timeout: 180_000 });
      await frame.evaluate(() => {
        window.__remoteStates = [];
        const record = () => {
          const last = [...document.querySelectorAll('.exchange')].pop();
          if (last?.classList.contains('running')) window.__remoteStates.push(last.querySelector('.answer').textContent);
        };
        new MutationObserver(record).observe(document.getElementById('exchanges'), { subtree: true, childList: true, characterData: true });
      });
      const ex = await askInPanel(frame, 'Describe every detail of this picture.');
      const states = [...new Set(await frame.evaluate(() => window.__remoteStates.filter((t) => t.trim())))];
      log(`  partial states seen from the server: ${states.length}`);
      if (states.length < 2) throw new Error(`expected the server's answer to form block by block, saw ${JSON.stringify(states)}`);
      const stateLine = await ex.locator('.state').innerText();
      log(`  answer line: ${stateLine}`);
      if (!stateLine.includes(url)) throw new Error(`the answer does not say which server gave it: ${stateLine}`);
      await shot('18-remote-ask');

      const editor = await openFile('notes.md');
      const hoverText = await hoverOver(editor.locator('.view-line span', { hasText: 'images/flow.png' }).first());
      log(`  hover: ${JSON.stringify(hoverText.slice(0, 120))}`);
      await page.keyboard.press('Escape');
      const after = await completed();
      if (after < before + 3) throw new Error(`serve --http finished ${after - before} requests, expected the two asks and the hover`);

      await palette('DiffusionVL: Show Status');
      const row = quickInput().locator('.monaco-list-row', { hasText: 'Answers from' });
      await row.waitFor({ timeout: 30_000 });
      if (!(await row.innerText()).includes(url)) throw new Error(`Show Status does not name the server: ${await row.innerText()}`);
      await shot('19-remote-status');
      await page.keyboard.press('Escape');
      if (fs.readFileSync(path.join(ARTIFACTS, 'serve-http.log'), 'utf8').includes(key)) throw new Error('the key appears in the server log');
    } finally {
      http.kill('SIGTERM');
      fs.closeSync(httpLog);
      writeSettings(everyday);
    }
    await useModel(DEMO);
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
    // The demo model's answer, followed by its demo mark (this profile runs the shipped demo model).
    const [described, demoMark] = res.chat[0].markdown.join('').split('\n\n');
    if (described !== 'an arrow from H to B' || !/Demo model/.test(demoMark ?? '')) throw new Error(`unexpected /describe response ${JSON.stringify(res.chat[0])}`);
    // The harness sends chat requests before tool calls: the tool reads the image the user attached…
    // The demo model's answer, then its note (this profile runs the shipped demo model).
    const [toolAnswer, toolNote] = res.tool[0].text.split('\n\n');
    if (toolAnswer !== 'B' || !/demo model/.test(toolNote ?? '')) throw new Error(`the tool did not read the attached image: ${JSON.stringify(res.tool[0])}`);
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
