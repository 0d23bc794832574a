import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, ResponseError, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import { createConnection } from 'vscode-languageserver/node';
import { createEngine } from '../../../server/engine/engine';
import { startServer } from '../../../server/lsp/server';
import { ErrorCodes, Methods } from '../../../server/protocol';
import { Finding, type FuzzTarget } from '../target';
import { repoRoot } from './repo';
import { scratchDir } from './scratch';

/**
 * Input: JSON params for one of the sidecar's requests (the first byte picks which), sent by a real JSON-RPC client
 * to the real sidecar, wired in this process (so that its code is measured) with the demo model. Every request must
 * be answered, with a result or an error of a kind (never InternalError), and the sidecar must still answer status.
 * prepareModel runs too, but always into a scratch folder and against a closed loopback port.
 */
const REQUESTS = [Methods.ask, Methods.ask, Methods.status, Methods.prepareModel, 'textDocument/hover', 'textDocument/codeAction', 'codeAction/resolve', 'workspace/executeCommand'];
const NOTIFICATIONS = ['workspace/didChangeConfiguration', 'textDocument/didOpen', 'textDocument/didChange'];
let client: MessageConnection;
let ws = '';
let storage = '';

export const target: FuzzTarget = {
  maxLength: 8 * 1024,
  dictionary: [
    '"image"', '"path"', '"uri"', '"bytes"', '"question"', '"options"', '"maxNewTokens"', '"steps"', '"remasking"', '"dynamic"',
    '"confidenceThreshold"', '"streamToken"', '"streamSteps"', '"workDoneToken"', '"partialResultToken"', '"textDocument"', '"position"',
    '"line"', '"character"', '"range"', '"context"', '"diagnostics"', '"command"', '"arguments"', '"diffusionvl.applyDescription"',
    '"settings"', '"diffusionvl"', '"modelPath"', '"storageDir"', '"repo"', '"revision"', '"precision"', '"localCheckpoint"',
    '"$DOC"', '"$WS/ok.png"', '"ok.png"', '"file:///"', '"../"', '"iVBORw0KGgo="', 'null', 'true', '-1', '1e308', '{}', '[]',
  ],
  async setup() {
    ws = scratchDir('lsp-ws');
    storage = scratchDir('lsp-storage');
    copyFileSync(join(repoRoot, 'media', 'examples', 'chart-1.png'), join(ws, 'ok.png'));
    writeFileSync(join(ws, 'doc.md'), '# Doc\n\n![chart](ok.png)\n<img src="ok.png">\n');
    const toServer = new PassThrough();
    const toClient = new PassThrough();
    const connection = createConnection(new StreamMessageReader(toServer), new StreamMessageWriter(toClient));
    startServer(connection, { engineFactory: createEngine, settings: { modelPath: join(repoRoot, 'models', 'default'), executionProvider: 'cpu' } });
    client = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
    client.onRequest(() => null);
    client.onNotification(() => {});
    client.listen();
    await client.sendRequest('initialize', {
      processId: null,
      rootUri: pathToFileURL(ws).href,
      workspaceFolders: [{ uri: pathToFileURL(ws).href, name: 'ws' }],
      capabilities: { textDocument: { codeAction: { resolveSupport: { properties: ['edit'] } } }, workspace: { workspaceFolders: true } },
      initializationOptions: { settings: { executionProvider: 'cpu' } },
    });
    await client.sendNotification('initialized', {});
    await client.sendNotification('textDocument/didOpen', { textDocument: { uri: pathToFileURL(join(ws, 'doc.md')).href, languageId: 'markdown', version: 1, text: '![chart](ok.png)\n<img src="ok.png">\n' } });
  },
  async fuzz(data) {
    if (data.length === 0) return;
    const pick = data[0];
    // `$DOC` stands for the open document's URI and `$WS` for the workspace folder, which change with every run.
    const text = data.subarray(1).toString('utf8').replaceAll('$DOC', pathToFileURL(join(ws, 'doc.md')).href).replaceAll('$WS', ws);
    let params: unknown;
    try {
      params = JSON.parse(text);
    } catch {
      params = text;
    }
    if (pick >= 0xf0) {
      await client.sendNotification(NOTIFICATIONS[pick % NOTIFICATIONS.length], params as object);
    } else {
      const method = REQUESTS[pick % REQUESTS.length];
      if (method === Methods.prepareModel && params !== null && typeof params === 'object' && !Array.isArray(params)) {
        // Never let a fuzzed request write outside the scratch folder or reach a real host.
        Object.assign(params, { storageDir: storage, endpoint: 'http://127.0.0.1:9' });
        delete (params as Record<string, unknown>).localCheckpoint;
      }
      await answered(method, params);
    }
    await answered(Methods.status, null);
  },
  async teardown() {
    await client.sendRequest('shutdown').catch(() => {});
    client.dispose();
  },
};

async function answered(method: string, params: unknown): Promise<void> {
  try {
    await client.sendRequest(method, params as object);
  } catch (err) {
    if (err instanceof ResponseError && err.code !== ErrorCodes.InternalError && err.code !== -32603) return;
    const what = err instanceof ResponseError ? `code ${err.code}: ${err.message}` : String(err);
    throw new Finding(`${method} was answered with an unclassified error (${what})`, { cause: err });
  }
}
