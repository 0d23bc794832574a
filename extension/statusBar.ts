import * as vscode from 'vscode';
import { architectureLabel, type StatusResult } from '../server/protocol';
import type { Sidecar } from './client';
import { explainCompute } from './compute';
import { demoMarkdown, REAL_MODEL_COMMANDS } from './demo';
import { resolveModel } from './settings';

/** Model states in a user's words. */
export const STATE_WORDS: Record<NonNullable<StatusResult['model']['state']>, string> = {
  none: 'no model',
  unloaded: 'loads on your first question',
  loading: 'loading…',
  ready: 'loaded',
  error: 'failed to load',
};

/** Status-bar item: model, GPU/CPU and why, busy spinner; click for the full status. */
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
    const model = resolveModel(this.ctx);
    const compute = explainCompute(s);
    const demo = model.source === 'bundled';
    const busy = this.sidecar.busy > 0 || s?.model.state === 'loading' || (s?.queue.running ?? 0) > 0;
    const tip = new vscode.MarkdownString(undefined, true);
    tip.isTrusted = { enabledCommands: ['diffusionvl.showStatus', 'diffusionvl.showLog', ...REAL_MODEL_COMMANDS] };
    this.item.backgroundColor = undefined;

    switch (this.sidecar.state) {
      case 'starting':
      case 'restarting':
        this.item.text = `$(sync~spin) DiffusionVL`;
        tip.appendMarkdown(this.sidecar.state === 'starting' ? 'Starting the DiffusionVL server…' : 'The DiffusionVL server stopped; restarting it…');
        break;
      case 'stopped':
        this.item.text = '$(error) DiffusionVL';
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        tip.appendMarkdown('The DiffusionVL server is not running. [Show log](command:diffusionvl.showLog)');
        break;
      case 'running':
        if (!s || s.model.state === 'none') {
          this.item.text = '$(cloud-download) DiffusionVL: no model';
          this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
          tip.appendMarkdown('No model yet. [Download Model](command:diffusionvl.downloadModel) or [Use Local Model Folder](command:diffusionvl.useLocalModelFolder).');
        } else {
          const icon = busy ? '$(sync~spin)' : s.model.state === 'error' ? '$(warning)' : demo ? '$(beaker)' : '$(eye)';
          this.item.text = `${icon} ${demo ? 'DiffusionVL demo' : model.label} · ${compute.short}`;
          tip.appendMarkdown(`**${model.label}** — ${STATE_WORDS[s.model.state]}\n\n`);
          if (s.model.architecture) tip.appendMarkdown(`**Architecture:** ${architectureLabel(s.model.architecture)}\n\n`);
          if (demo) tip.appendMarkdown(`${demoMarkdown().value}\n\n`);
          tip.appendMarkdown(`${compute.what}${compute.todo ? ` ${compute.todo}` : ''}\n\n`);
          if (s.model.error) tip.appendMarkdown(`**Error:** ${s.model.error}\n\n`);
          if (busy) tip.appendMarkdown(`Busy: ${s.queue.running} running, ${s.queue.waitingInteractive + s.queue.waitingHover} waiting\n\n`);
          tip.appendMarkdown('[Show status](command:diffusionvl.showStatus)');
          if (s.model.state === 'error') this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        }
        break;
    }
    this.item.tooltip = tip;
    this.item.accessibilityInformation = { label: `DiffusionVL: ${this.item.text.replace(/\$\([^)]*\)\s*/g, '')}` };
  }

  dispose(): void {
    this.subs.forEach((d) => d.dispose());
    this.item.dispose();
  }
}
