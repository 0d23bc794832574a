import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createEngine } from '../../../server/engine/engine';
import { createMcpServer } from '../../../server/mcp/server';
import { Finding, invariant, type FuzzTarget } from '../target';
import { repoRoot } from './repo';
import { scratchDir } from './scratch';

/**
 * Input: JSON arguments for one of the MCP tools (the first byte picks which), sent by the SDK's client to the real
 * MCP server in this process with the demo model and one allowed root. A call must end in a result, a tool error
 * naming a kind (never InternalError), or the protocol's InvalidParams for arguments outside the schema.
 */
const TOOLS = ['ask_image', 'describe_image'];
let client: Client;
let dispose: () => Promise<void>;

export const target: FuzzTarget = {
  maxLength: 8 * 1024,
  dictionary: [
    '"path"', '"data"', '"question"', '"style"', '"alt"', '"caption"', '"detailed"', '"max_tokens"', '"strategy"', '"static"', '"dynamic"',
    '"ok.png"', '"file:///"', '"../"', '"/etc/passwd"', '"data:image/png;base64,iVBORw0KGgo="', '"Qk0="', 'null', 'true', '-1', '1e308', '{}', '[]',
  ],
  async setup() {
    const root = scratchDir('mcp-root');
    copyFileSync(join(repoRoot, 'media', 'examples', 'chart-1.png'), join(root, 'ok.png'));
    const mcp = createMcpServer({ engineFactory: createEngine, settings: { modelPath: join(repoRoot, 'models', 'default'), executionProvider: 'cpu' }, roots: [root], log: () => {} });
    dispose = mcp.dispose;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await mcp.server.connect(serverSide);
    client = new Client({ name: 'fuzz', version: '1' });
    await client.connect(clientSide);
  },
  async fuzz(data) {
    if (data.length === 0) return;
    let args: unknown;
    try {
      args = JSON.parse(data.subarray(1).toString('utf8'));
    } catch {
      args = data.subarray(1).toString('utf8');
    }
    // MCP defines tool arguments as an object; the SDK refuses anything else before the server sees it (as
    // InternalError: the SDK's choice, outside this server), so other values go in wrapped.
    if (args === null || typeof args !== 'object' || Array.isArray(args)) args = { value: args };
    let result: CallToolResult;
    try {
      result = (await client.callTool({ name: TOOLS[data[0] % TOOLS.length], arguments: args as Record<string, unknown> })) as CallToolResult;
    } catch (err) {
      if (err instanceof McpError && err.code === ErrorCode.InvalidParams) return;
      throw new Finding(`tools/call failed outside the tool's contract: ${String(err)}`, { cause: err });
    }
    if (result.isError) {
      const text = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
      // Ours name a kind (`InvalidImage: …`); the SDK reports arguments outside the schema as InvalidParams.
      invariant(/^(?:[A-Z]\w+: |MCP error -32602: )/.test(text) && !text.startsWith('InternalError'), `tool error without a kind: ${text.slice(0, 300)}`);
    } else {
      invariant(typeof (result.structuredContent as { text?: unknown } | undefined)?.text === 'string', 'a result without text');
    }
  },
  async teardown() {
    await client.close();
    await dispose();
  },
};
