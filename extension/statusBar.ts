import * as vscode from 'vscode';
import { architectureLabel, type StatusResult } from '../server/protocol';
import type { Sidecar } from './client';
import { resolveModel } from './settings';

/** "GPU (cuda)" / "CPU" from the provider the server actually uses (or the one requested before first load). */
export function computeLabel(s: StatusResult | undefined): { short: string; why: string } {
  if (!s) return { short: '', why: '' };
  const inUse = s.provider.inUse;
  const name = inUse ?? s.provider.requested;
  const onCpu = name === 'cpu' || /\bcpu\b/i.test(name) && !/cuda|dml|coreml|webgpu/i.test(name);
  const short = inUse ? (onCpu ? 'CPU' : `GPU (${name})`) : `${s.provider.requested} — not loaded`;
  const why = s.provider.reason ?? (inUse ? `${name} requested and in use` : 'decided when the model first loads');
  return { short, why };
}

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
    const { short, why } = computeLabel(s);
    const busy = this.sidecar.busy > 0 || s?.model.state === 'loading' || (s?.queue.running ?? 0) > 0;
    const tip = new vscode.MarkdownString(undefined, true);
    tip.isTrusted = { enabledCommands: ['diffusionvl.showStatus', 'diffusionvl.downloadModel', 'diffusionvl.useLocalModelFolder', 'diffusionvl.showLog'] };
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
          const icon = busy ? '$(sync~spin)' : s.model.state === 'error' ? '$(warning)' : '$(eye)';
          this.item.text = `${icon} ${model.label} · ${short}`;
          tip.appendMarkdown(`**${model.label}** — ${s.model.state}${s.model.precision ? `, ${s.model.precision}` : ''}\n\n`);
          if (s.model.architecture) tip.appendMarkdown(`**Architecture:** ${architectureLabel(s.model.architecture)}\n\n`);
          tip.appendMarkdown(`**Runs on:** ${short}\n\n**Why:** ${why}\n\n`);
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
