import * as vscode from 'vscode';
import { SidecarError, type Sidecar } from './client';
import { recordServerConsent, serverConsent, serverUrl } from './settings';

/** Secret-storage name of the API key for one server URL: a key is only ever sent to the server it was set for. */
function secretName(url: string): string {
  return `diffusionvl.server.apiKey:${url}`;
}

/** The API key stored for `url`, if any (read from VS Code's secret storage; never logged). */
export async function serverApiKey(ctx: vscode.ExtensionContext, url: string | undefined): Promise<string | undefined> {
  if (!url) return undefined;
  return (await ctx.secrets.get(secretName(url))) || undefined;
}

let asking: Promise<boolean | undefined> | undefined;

/**
 * Before anything is sent to a server that is not on this machine: the user's consent for this URL, asked once (a
 * modal dialog) and remembered per URL. Loopback URLs need none. Throws a SidecarError when the answer is no (or
 * the dialog was dismissed, which is asked again next time).
 */
export async function ensureServerAllowed(ctx: vscode.ExtensionContext, sidecar: Sidecar): Promise<void> {
  const url = serverUrl();
  if (!url) return;
  let allowed = serverConsent(ctx, url);
  if (allowed === undefined) {
    // Several features may start at once (a hover while a question runs): one dialog for them all.
    asking ??= askConsent(url).finally(() => (asking = undefined));
    const answer = await asking;
    if (answer !== undefined) {
      await recordServerConsent(ctx, url, answer);
      // The sidecar gets the consent before the request that needed it (messages are handled in order).
      await sidecar.sendSettings();
    }
    allowed = answer;
  }
  if (allowed !== true) {
    throw new SidecarError(
      allowed === false
        ? `Not sent: you chose not to send images to ${url}. Clear the diffusionvl.server.url setting to use the local model, or allow that server in DiffusionVL: Show Status.`
        : `Not sent: images go to ${url} only once you allow it.`,
      undefined,
      allowed === undefined,
    );
  }
}

async function askConsent(url: string): Promise<boolean | undefined> {
  const host = new URL(url).host;
  const pick = await vscode.window.showWarningMessage(
    `Send images to ${host}?`,
    {
      modal: true,
      detail:
        `The diffusionvl.server.url setting says that ${url} answers instead of the model on this computer. ` +
        'The images you ask about (and those hovers and alt text describe) and your questions will be sent there: they leave this machine. ' +
        'You are asked once for this server.',
    },
    'Send to This Server',
    "Don't Send",
  );
  return pick === 'Send to This Server' ? true : pick === "Don't Send" ? false : undefined;
}

/** Lets the user change their answer for the configured server (from Show Status). */
export async function setServerAllowed(ctx: vscode.ExtensionContext, sidecar: Sidecar, allowed: boolean): Promise<void> {
  const url = serverUrl();
  if (!url) return;
  await recordServerConsent(ctx, url, allowed);
  await sidecar.sendSettings();
}

/** Set Server API Key… / Clear Server API Key: the key for the configured server, kept in secret storage. */
export function registerServerKeyCommands(ctx: vscode.ExtensionContext, sidecar: Sidecar): vscode.Disposable {
  const needUrl = (): string | undefined => {
    const url = serverUrl();
    if (!url) {
      void vscode.window
        .showInformationMessage('Set diffusionvl.server.url to the shared server first; the key is kept for that server.', 'Open Setting')
        .then((pick) => pick && vscode.commands.executeCommand('workbench.action.openSettings', 'diffusionvl.server.url'));
    }
    return url;
  };
  return vscode.Disposable.from(
    vscode.commands.registerCommand('diffusionvl.setServerApiKey', async () => {
      const url = needUrl();
      if (!url) return;
      const key = await vscode.window.showInputBox({
        title: `API key for ${url}`,
        prompt: 'Sent to that server only, as a Bearer token. Kept in VS Code\'s secret storage. Leave empty to remove it.',
        password: true,
        ignoreFocusOut: true,
      });
      if (key === undefined) return;
      if (key.trim()) await ctx.secrets.store(secretName(url), key.trim());
      else await ctx.secrets.delete(secretName(url));
      // The key reaches the sidecar only when it starts (in its environment, never in settings traffic).
      await sidecar.restart();
      void vscode.window.showInformationMessage(key.trim() ? `DiffusionVL: API key for ${url} saved.` : `DiffusionVL: API key for ${url} removed.`);
    }),
    vscode.commands.registerCommand('diffusionvl.clearServerApiKey', async () => {
      const url = needUrl();
      if (!url) return;
      await ctx.secrets.delete(secretName(url));
      await sidecar.restart();
      void vscode.window.showInformationMessage(`DiffusionVL: API key for ${url} removed.`);
    }),
  );
}
