import * as vscode from 'vscode';
import { architectureLabel, type RemoteStatus, type StatusResult } from '../server/protocol';
import type { Sidecar } from './client';
import { explainCompute } from './compute';
import { demoMarkdown, REAL_MODEL_COMMANDS } from './demo';
import { resolveModel, serverConsent, serverUrl } from './settings';

/** Model states in a user's words. */
export const STATE_WORDS: Record<NonNullable<StatusResult['model']['state']>, string> = {
  none: 'no model',
  unloaded: 'loads on your first question',
  loading: 'loading…',
  ready: 'loaded',
  error: 'failed to load',
};

/** A remote server's state in a user's words. */
export const REMOTE_STATE_WORDS: Record<RemoteStatus['state'], string> = {
  unknown: 'not asked yet',
  ok: 'answering',
  unreachable: 'cannot be reached',
  refused: 'refused the API key',
  failed: 'answered with an error',
};

/** The host (and port) a status line names a server by. */
export function serverHost(url: string): string {
  return new URL(url).host;
}

/** Status-bar item: what answers (the local model and GPU/CPU and why, or the shared server), busy spinner; click
 * for the full status. From the first frame it names what will answer, before the sidecar has reported anything. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('diffusionvl.status', vscode.StatusBarAlignment.Right, 100);
  private readonly subs: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly sidecar: Sidecar,
  ) {
    this.item.name = 'DiffusionVL';
    this.item.command = 'diffusionvl.showStatus';
    this.subs.push(
      sidecar.onDidChangeState(() => this.render()),
      sidecar.onDidChangeStatus(() => this.render()),
      sidecar.onDidChangeBusy(() => this.render()),
    );
    this.render();
    this.item.show();
  }

  render(): void {
    const s = this.sidecar.status;
    const remoteUrl = serverUrl();
    const model = resolveModel(this.ctx);
    const busy = this.sidecar.busy > 0 || s?.model.state === 'loading' || (s?.queue.running ?? 0) > 0;
    const tip = new vscode.MarkdownString(undefined, true);
    tip.isTrusted = { enabledCommands: ['diffusionvl.showStatus', 'diffusionvl.showLog', ...REAL_MODEL_COMMANDS] };
    this.item.backgroundColor = undefined;
    // What answers, as the extension's own settings say: known before the sidecar reports anything.
    const name = remoteUrl ? `DiffusionVL: ${serverHost(remoteUrl)}` : model.demo ? 'DiffusionVL demo' : model.source === 'none' ? 'DiffusionVL: no model' : model.label;

    if (this.sidecar.state === 'stopped') {
      this.item.text = `$(error) ${name}`;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      tip.appendMarkdown('The DiffusionVL server is not running. [Show log](command:diffusionvl.showLog)');
    } else if (this.sidecar.state !== 'running' || !s) {
      this.item.text = `$(sync~spin) ${name}`;
      tip.appendMarkdown(this.sidecar.state === 'restarting' ? 'The DiffusionVL server stopped; restarting it…\n\n' : 'Starting the DiffusionVL server…\n\n');
      tip.appendMarkdown(remoteUrl ? `Answers will come from **${remoteUrl}**.` : `Answers will come from **${model.label}** on this computer.`);
    } else if (remoteUrl) {
      this.renderRemote(tip, remoteUrl, s.remote, busy);
    } else if (s.model.state === 'none') {
      this.item.text = '$(cloud-download) DiffusionVL: no model';
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      tip.appendMarkdown('No model yet. [Download Model](command:diffusionvl.downloadModel) or [Use Local Model Folder](command:diffusionvl.useLocalModelFolder).');
    } else {
      const compute = explainCompute(s);
      const icon = busy ? '$(sync~spin)' : s.model.state === 'error' ? '$(warning)' : model.demo ? '$(beaker)' : '$(eye)';
      this.item.text = `${icon} ${name} · ${compute.short}`;
      tip.appendMarkdown(`**${model.label}** — ${STATE_WORDS[s.model.state]}\n\n`);
      if (s.model.architecture) tip.appendMarkdown(`**Architecture:** ${architectureLabel(s.model.architecture)}\n\n`);
      if (model.demo) tip.appendMarkdown(`${demoMarkdown().value}\n\n`);
      tip.appendMarkdown(`${compute.what}${compute.todo ? ` ${compute.todo}` : ''}\n\n`);
      if (s.model.error) tip.appendMarkdown(`**Error:** ${s.model.error}\n\n`);
      if (busy) tip.appendMarkdown(`Busy: ${s.queue.running} running, ${s.queue.waitingInteractive + s.queue.waitingHover} waiting\n\n`);
      tip.appendMarkdown('[Show status](command:diffusionvl.showStatus)');
      if (s.model.state === 'error') this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
    }
    this.item.tooltip = tip;
    this.item.accessibilityInformation = { label: `DiffusionVL: ${this.item.text.replace(/\$\([^)]*\)\s*/g, '')}` };
  }

  /** A shared server answers: name it, say how it is doing and whether images may go there yet. */
  private renderRemote(tip: vscode.MarkdownString, url: string, r: RemoteStatus | undefined, busy: boolean): void {
    const allowed = serverConsent(this.ctx, url) === true;
    const trouble = r && r.state !== 'ok' && r.state !== 'unknown';
    const icon = busy ? '$(sync~spin)' : trouble || !allowed ? '$(warning)' : '$(cloud)';
    this.item.text = `${icon} DiffusionVL: ${serverHost(url)}`;
    tip.appendMarkdown(`Answers come from the shared server **${url}**${r?.model ? ` (model ${r.model})` : ''}, not from a model on this computer.\n\n`);
    if (!allowed) tip.appendMarkdown('Nothing has been sent to it yet: you are asked before the first image goes there.\n\n');
    if (r) tip.appendMarkdown(`**Server:** ${REMOTE_STATE_WORDS[r.state]}${r.hasKey ? ' · API key set' : ''}\n\n`);
    if (r?.error) tip.appendMarkdown(`**Last error:** ${r.error}\n\n`);
    tip.appendMarkdown('[Show status](command:diffusionvl.showStatus)');
    if (trouble) this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
  }

  dispose(): void {
    this.subs.forEach((d) => d.dispose());
    this.item.dispose();
  }
}
