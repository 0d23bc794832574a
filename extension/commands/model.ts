import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { architectureLabel, MANIFEST_FILE, Methods, type PrepareModelParams, type PrepareModelResult, type StatusResult } from '../../server/protocol';
import type { Sidecar } from '../client';
import { showUserError } from '../userErrors';
import { SidecarError } from '../client';
import { explainBackend, explainCompute } from '../compute';
import { DEMO_SUMMARY } from '../demo';
import { setServerAllowed } from '../remote';
import { REMOTE_STATE_WORDS, STATE_WORDS } from '../statusBar';
import { downloadEndpoint, MODELS, type ModelName, modelName, preparedModels, recordPreparedModel, resolveModel, SECTION, serverConsent, serverUrl } from '../settings';

function mib(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GB` : `${Math.round(n / (1 << 20))} MB`;
}

/** Runs prepareModel with a cancellable notification fed by the server's work-done progress. */
async function prepare(sidecar: Sidecar, title: string, params: Omit<PrepareModelParams, 'workDoneToken'>): Promise<PrepareModelResult | undefined> {
  const workDoneToken = sidecar.newToken('prepare');
  return sidecar.busyWhile(async () =>
    vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
      let last = 0;
      const sub = await sidecar.onWorkDoneProgress(workDoneToken, (v) => {
        if (v.kind === 'end') return;
        const pct = v.percentage;
        const increment = pct !== undefined ? Math.max(0, pct - last) : undefined;
        if (pct !== undefined) last = pct;
        progress.report({ message: v.message, increment });
      });
      try {
        return await sidecar.request(Methods.prepareModel, { ...params, workDoneToken } satisfies PrepareModelParams, token);
      } catch (err) {
        if (err instanceof SidecarError && err.cancelled) {
          void vscode.window.showInformationMessage('Model preparation cancelled. Downloaded files are kept and the next try resumes.');
          return undefined;
        }
        throw err;
      } finally {
        sub.dispose();
      }
    }),
  );
}

async function downloadModel(ctx: vscode.ExtensionContext, sidecar: Sidecar): Promise<void> {
  const have = preparedModels(ctx);
  const current = modelName();
  const items = (Object.keys(MODELS) as ModelName[]).map((name) => ({
    name,
    label: `DiffusionVL ${name}`,
    description: `${MODELS[name].download} · ${MODELS[name].memory}`,
    detail: `${MODELS[name].repo}${have[MODELS[name].repo] ? ' — downloaded' : ''}${name === current ? ' (selected)' : ''}`,
  }));
  const pick = await vscode.window.showQuickPick(items, { title: 'Download Model', placeHolder: 'Which model? It is downloaded once and converted for ONNX Runtime.' });
  if (!pick) return;
  await fs.promises.mkdir(ctx.globalStorageUri.fsPath, { recursive: true });
  const repo = MODELS[pick.name].repo;
  const result = await prepare(sidecar, `Downloading DiffusionVL ${pick.name}`, { storageDir: ctx.globalStorageUri.fsPath, repo, endpoint: downloadEndpoint() });
  if (!result) return;
  await recordPreparedModel(ctx, repo, result.modelDir);
  await vscode.workspace.getConfiguration(SECTION).update('model', pick.name, vscode.ConfigurationTarget.Global);
  void sidecar.sendSettings();
  void vscode.window.showInformationMessage(`DiffusionVL ${pick.name} is ready${result.downloadedBytes ? ` (${mib(result.downloadedBytes)} downloaded)` : ''}.`);
}

async function useLocalFolder(ctx: vscode.ExtensionContext, sidecar: Sidecar): Promise<void> {
  const picked = await vscode.window.showOpenDialog({
    title: 'Use Local Model Folder',
    openLabel: 'Use This Model',
    canSelectFolders: true,
    canSelectFiles: false,
  });
  const dir = picked?.[0]?.fsPath;
  if (!dir) return;
  let modelDir = dir;
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    if (!fs.existsSync(path.join(dir, 'config.json'))) {
      void vscode.window.showErrorMessage(`${dir} holds neither a converted model (manifest.json) nor a checkpoint (config.json + *.safetensors).`);
      return;
    }
    // A checkpoint: convert it into our storage once.
    await fs.promises.mkdir(ctx.globalStorageUri.fsPath, { recursive: true });
    const result = await prepare(sidecar, `Converting ${path.basename(dir)}`, { storageDir: ctx.globalStorageUri.fsPath, localCheckpoint: dir });
    if (!result) return;
    modelDir = result.modelDir;
  }
  await vscode.workspace.getConfiguration(SECTION).update('modelPath', modelDir, vscode.ConfigurationTarget.Global);
  void sidecar.sendSettings();
  void vscode.window.showInformationMessage(`DiffusionVL now uses ${modelDir}.`);
}

type Action = vscode.QuickPickItem & { run?: () => unknown };

/** The whole CPU/GPU explanation, which a quick-pick row would cut off, with the setting one click away. */
async function explainComputeModal(c: ReturnType<typeof explainCompute>, setting = 'diffusionvl.executionProvider'): Promise<void> {
  const detail = [c.todo, c.details ? `Details: ${c.details}` : undefined].filter(Boolean).join('\n\n');
  const pick = await vscode.window.showInformationMessage(c.what, { modal: true, detail }, 'Open Setting');
  if (pick === 'Open Setting') await vscode.commands.executeCommand('workbench.action.openSettings', setting);
}

/** Show Status: the server's view (model, provider and why, memory, queue) with the actions that fix what's wrong. */
async function showStatus(ctx: vscode.ExtensionContext, sidecar: Sidecar): Promise<void> {
  const s: StatusResult | undefined = await sidecar.refreshStatus();
  const model = resolveModel(ctx);
  const remoteUrl = serverUrl();
  const rows: Action[] = [{ label: 'Status', kind: vscode.QuickPickItemKind.Separator }];
  rows.push({ label: `$(server-process) Server`, description: sidecar.state });
  if (remoteUrl) {
    // A shared server answers: the rows say which, how it is doing, and whether images may go there.
    const r = s?.remote;
    const allowed = serverConsent(ctx, remoteUrl);
    rows.push(
      { label: '$(cloud) Answers from', description: remoteUrl, detail: `A shared server answers every question${r?.model ? ` (model ${r.model})` : ''}; the model on this computer is not used. Setting: diffusionvl.server.url`, run: () => vscode.commands.executeCommand('workbench.action.openSettings', 'diffusionvl.server') },
      { label: '$(pulse) Server state', description: r ? `${REMOTE_STATE_WORDS[r.state]}${r.hasKey ? ' · API key set' : ' · no API key'}` : 'unknown', detail: r?.error },
      allowed === true
        ? { label: '$(pass) Images may be sent there', description: 'you allowed it', run: () => setServerAllowed(ctx, sidecar, false) }
        : { label: '$(circle-slash) Images are not sent there', description: allowed === false ? 'you said no — pick to allow' : 'you are asked on first use — pick to allow now', run: () => setServerAllowed(ctx, sidecar, true) },
    );
    if (s) rows.push({ label: `$(list-ordered) Requests`, description: `${s.queue.running} running, ${s.queue.waitingInteractive + s.queue.waitingHover} waiting, ${s.queue.completed} done, ${s.queue.failed} failed, ${s.queue.cancelled} cancelled` });
  } else if (s) {
    const compute = explainCompute(s);
    const decoder = explainBackend(s);
    const demo = model.demo;
    rows.push(
      { label: `$(${demo ? 'beaker' : 'symbol-misc'}) Model`, description: `${model.label} — ${STATE_WORDS[s.model.state]}${s.model.architecture ? ` · ${architectureLabel(s.model.architecture)}` : ''}`, detail: demo ? DEMO_SUMMARY : s.model.dir ?? 'none configured' },
      // The explanation is longer than a row: the row says where, picking it shows why and what to do.
      { label: `$(chip) Runs on`, description: compute.short, detail: compute.what, run: () => explainComputeModal(compute) },
      // The reason names llama.cpp's device, or why it could not run: shown in the row, so nothing falls back unseen.
      { label: `$(layers) Text decoder`, description: decoder.short, detail: [decoder.what, decoder.details].filter(Boolean).join(' — '), run: () => explainComputeModal(decoder, 'diffusionvl.backend') },
      { label: `$(pulse) Memory`, description: `${mib(s.memory.rssBytes)} resident, ${mib(s.memory.externalBytes)} native buffers` },
      { label: `$(list-ordered) Requests`, description: `${s.queue.running} running, ${s.queue.waitingInteractive + s.queue.waitingHover} waiting, ${s.queue.completed} done, ${s.queue.failed} failed, ${s.queue.cancelled} cancelled` },
    );
    if (s.model.error) rows.push({ label: '$(error) Last error', detail: s.model.error });
    if (s.download) rows.push({ label: '$(cloud-download) Download', description: `${s.download.phase} ${mib(s.download.bytesDone)} / ${mib(s.download.bytesTotal)}`, detail: s.download.repo });
  }
  rows.push(
    { label: 'Actions', kind: vscode.QuickPickItemKind.Separator },
    { label: '$(cloud-download) Download Model…', run: () => vscode.commands.executeCommand('diffusionvl.downloadModel') },
    { label: '$(folder-opened) Use Local Model Folder…', run: () => vscode.commands.executeCommand('diffusionvl.useLocalModelFolder') },
    { label: '$(gear) Settings', run: () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:diffusionvl.diffusionvl-vscode') },
    { label: '$(key) Set Server API Key…', run: () => vscode.commands.executeCommand('diffusionvl.setServerApiKey') },
    { label: '$(debug-restart) Restart Server', run: () => vscode.commands.executeCommand('diffusionvl.restartServer') },
    { label: '$(output) Show Server Log', run: () => vscode.commands.executeCommand('diffusionvl.showLog') },
  );
  if (s?.model.state === 'ready') rows.push({ label: '$(trash) Unload Model Now', run: () => sidecar.request(Methods.unloadModel, null).then(() => sidecar.refreshStatus()) });
  const pick = await vscode.window.showQuickPick(rows, { title: 'DiffusionVL Status', placeHolder: 'Pick an action' });
  await pick?.run?.();
}

export function registerModelCommands(ctx: vscode.ExtensionContext, sidecar: Sidecar): vscode.Disposable {
  const guard = (f: () => Promise<void>) => async () => {
    try {
      await f();
    } catch (err) {
      void showUserError(sidecar.log, 'model command', err);
    }
  };
  return vscode.Disposable.from(
    vscode.commands.registerCommand('diffusionvl.downloadModel', guard(() => downloadModel(ctx, sidecar))),
    vscode.commands.registerCommand('diffusionvl.useLocalModelFolder', guard(() => useLocalFolder(ctx, sidecar))),
    vscode.commands.registerCommand('diffusionvl.showStatus', guard(() => showStatus(ctx, sidecar))),
    vscode.commands.registerCommand('diffusionvl.restartServer', guard(() => sidecar.restart())),
    vscode.commands.registerCommand('diffusionvl.showLog', () => sidecar.log.show(true)),
  );
}
