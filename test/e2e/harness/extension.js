// Test-only: invokes `diffusionvl_askImage` through vscode.lm (the API chat agents use) and writes what came back
// to e2e-tool-result.json in the workspace, where the suite reads it. Requests come from e2e-tool-request.json.
const vscode = require('vscode');

const TOOL = 'diffusionvl_askImage';

async function invoke(input) {
  try {
    const r = await vscode.lm.invokeTool(TOOL, { input, toolInvocationToken: undefined }, new vscode.CancellationTokenSource().token);
    return { text: r.content.map((p) => (p instanceof vscode.LanguageModelTextPart ? p.value : '')).join('') };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

module.exports.activate = (ctx) => {
  ctx.subscriptions.push(vscode.commands.registerCommand('diffusionvlE2e.invokeAskImage', async () => {
    const folder = vscode.workspace.workspaceFolders[0].uri;
    const out = vscode.Uri.joinPath(folder, 'e2e-tool-result.json');
    const result = { tools: vscode.lm.tools.map((t) => t.name) };
    try {
      const request = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(folder, 'e2e-tool-request.json'))).toString('utf8'));
      result.tool = vscode.lm.tools.find((t) => t.name === TOOL);
      // The sidecar's own count of finished requests, before and after: the answer must come from it.
      const api = await vscode.extensions.getExtension('diffusionvl.diffusionvl-vscode').activate();
      result.completedBefore = (await api.sidecar.refreshStatus())?.queue.completed;
      result.answers = [];
      for (const input of request.calls) result.answers.push({ input, ...(await invoke(input)) });
      result.completedAfter = (await api.sidecar.refreshStatus())?.queue.completed;
    } catch (err) {
      result.error = String(err && err.stack ? err.stack : err);
    }
    await vscode.workspace.fs.writeFile(out, Buffer.from(JSON.stringify(result, null, 2)));
  }));
};
