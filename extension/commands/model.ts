import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { architectureLabel, MANIFEST_FILE, Methods, type PrepareModelParams, type PrepareModelResult, type StatusResult } from '../../server/protocol';
import type { Sidecar } from '../client';
import { errorText, SidecarError } from '../client';
import { computeLabel } from '../statusBar';
import { downloadEndpoint, MODELS, type ModelName, modelName, preparedModels, recordPreparedModel, resolveModel, SECTION } from '../settings';

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
  sidecar.sendSettings();
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
  sidecar.sendSettings();
  void vscode.window.showInformationMessage(`DiffusionVL now uses ${modelDir}.`);
}

type Action = vscode.QuickPickItem & { run?: () => unknown };

/** Show Status: the server's view (model, provider and why, memory, queue) with the actions that fix what's wrong. */
async function showStatus(ctx: vscode.ExtensionContext, sidecar: Sidecar): Promise<void> {
  const s: StatusResult | undefined = await sidecar.refreshStatus();
  const model = resolveModel(ctx);
  const rows: Action[] = [{ label: 'Status', kind: vscode.QuickPickItemKind.Separator }];
  rows.push({ label: `$(server-process) Server`, description: sidecar.state });
  if (s) {
    const { short, why } = computeLabel(s);
    rows.push(
      {
        label: `$(symbol-misc) Model`,
        description: `${model.label} — ${s.model.state}${s.model.architecture ? ` · ${architectureLabel(s.model.architecture)}` : ''}`,
        detail: s.model.dir ?? 'none configured',
      },
      { label: `$(chip) Runs on`, description: short, detail: `Why: ${why}` },
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
      void vscode.window.showErrorMessage(`DiffusionVL: ${errorText(err)}`);
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
