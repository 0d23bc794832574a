// Test-only: drives DiffusionVL's chat integrations the way VS Code and agents do, and writes what came back to
// e2e-result.json in the workspace, where the suite reads it. The requests come from e2e-request.json:
//   { chat: [{ prompt, command?, attach?: [absolute image paths] }], tool: [{ image, question }] }
// Chat requests go to the extension's `@diffusionvl` handler (this VS Code has no chat view to type them into),
// with a response stream that records each call; tool calls go through vscode.lm.invokeTool.
const vscode = require('vscode');

const TOOL = 'diffusionvl_askImage';

async function invokeTool(input) {
  try {
    const r = await vscode.lm.invokeTool(TOOL, { input, toolInvocationToken: undefined }, new vscode.CancellationTokenSource().token);
    return { text: r.content.map((p) => (p instanceof vscode.LanguageModelTextPart ? p.value : '')).join('') };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

async function sendChat(handler, req) {
  const seen = { markdown: [], progress: [], references: [] };
  const stream = {
    markdown: (v) => seen.markdown.push(typeof v === 'string' ? v : v.value),
    progress: (v) => seen.progress.push(v),
    reference: (v) => seen.references.push(v.toString()),
    anchor() {}, button() {}, filetree() {}, push() {},
  };
  const request = {
    prompt: req.prompt,
    command: req.command,
    references: (req.attach ?? []).map((p, i) => ({ id: `vscode.file.${i}`, value: vscode.Uri.file(p) })),
    toolReferences: [],
    toolInvocationToken: undefined,
    model: undefined,
  };
  try {
    seen.result = await handler(request, { history: [] }, stream, new vscode.CancellationTokenSource().token);
  } catch (err) {
    seen.error = err instanceof Error ? err.message : String(err);
  }
  return { request: req, ...seen };
}

module.exports.activate = (ctx) => {
  ctx.subscriptions.push(vscode.commands.registerCommand('diffusionvlE2e.run', async () => {
    const folder = vscode.workspace.workspaceFolders[0].uri;
    const result = { trusted: vscode.workspace.isTrusted, tools: vscode.lm.tools.map((t) => t.name), chat: [], tool: [] };
    try {
      const request = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(folder, 'e2e-request.json'))).toString('utf8'));
      result.toolInfo = vscode.lm.tools.find((t) => t.name === TOOL);
      const api = await vscode.extensions.getExtension('diffusionvl.diffusionvl-vscode').activate();
      // The sidecar's own count of finished requests, before and after: the answers must come from it.
      result.completedBefore = (await api.sidecar.refreshStatus())?.queue.completed;
      for (const req of request.chat ?? []) result.chat.push(await sendChat(api.chatHandler, req));
      for (const input of request.tool ?? []) result.tool.push({ input, ...(await invokeTool(input)) });
      result.completedAfter = (await api.sidecar.refreshStatus())?.queue.completed;
    } catch (err) {
      result.error = String(err && err.stack ? err.stack : err);
    }
    await vscode.workspace.fs.writeFile(vscode.Uri.joinPath(folder, 'e2e-result.json'), Buffer.from(JSON.stringify(result, null, 2)));
  }));
};
