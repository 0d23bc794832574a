import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { z } from 'zod';
import { CancelledError, type RemaskingStrategy } from '../engine/api';
import { DEFAULT_STRATEGY, GENERATION_OPTIONS, REMASKING_STRATEGIES } from '../engine/generationOptions';
import { DefaultPrompts, SERVER_INFO, type AskResult, type GenerationOptions, type ServerSettings, type SettingsUpdate } from '../protocol';
import { answer } from '../lsp/answer';
import { toResponseError } from '../lsp/errors';
import { clip, oneLine } from '../lsp/describe';
import type { EngineFactory } from '../lsp/modelLifecycle';
import { createStandalone } from '../lsp/standalone';
import { AllowedRoots, OutsideRootsError } from './roots';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface McpOptions {
  engineFactory: EngineFactory;
  /** Model folder, provider, threads (the same settings the sidecar takes). */
  settings: SettingsUpdate;
  /** `--root` folders; empty = the client's roots. */
  roots: string[];
  log: (msg: string) => void;
}

/** Styles of `describe_image`: the sidecar's own prompts and budgets, shaped as its hovers and alt-text fixes are. */
const DESCRIBE_STYLES = {
  alt: (s: ServerSettings) => ({ question: s.altText.prompt, maxNewTokens: s.altText.maxNewTokens, shape: (t: string) => clip(oneLine(t), s.altText.maxChars) }),
  caption: (s: ServerSettings) => ({ question: s.hover.prompt, maxNewTokens: s.hover.maxNewTokens, shape: oneLine }),
  detailed: () => ({ question: DefaultPrompts.describe, maxNewTokens: undefined, shape: (t: string) => t.trim() }),
} as const;
type DescribeStyle = keyof typeof DESCRIBE_STYLES;

const imageFields = {
  path: z.string().optional().describe('Image file: an absolute path or file: URI under an allowed root, or a path relative to the first root'),
  data: z.string().optional().describe('The image file itself (PNG, JPEG, WebP, GIF, BMP, TIFF, SVG) as base64 or a data: URL, instead of `path`'),
};
const generationFields = {
  max_tokens: z.number().int().optional().describe(`Longest answer in tokens (default ${GENERATION_OPTIONS.maxNewTokens.default}, at most ${GENERATION_OPTIONS.maxNewTokens.max})`),
  strategy: z.enum(REMASKING_STRATEGIES as [RemaskingStrategy, ...RemaskingStrategy[]]).optional().describe(`Remasking strategy of the block-diffusion decoder (default ${DEFAULT_STRATEGY})`),
};

/**
 * The DiffusionVL MCP server: `ask_image` and `describe_image` answered by one lazily loaded model (the sidecar's
 * model lifecycle and queue), with progress per decoded block and cancellation that stops the run within one step.
 */
export function createMcpServer(opts: McpOptions): { server: McpServer; dispose(): Promise<void> } {
  const roots = new AllowedRoots(opts.roots, opts.log);
  const { deps, dispose } = createStandalone({ engineFactory: opts.engineFactory, settings: opts.settings, guard: roots.guard, log: (msg) => opts.log(msg) });
  const settings = deps.settings;
  const server = new McpServer({ ...SERVER_INFO }, { capabilities: { tools: {} } });
  roots.attach(server.server);

  /** Runs one question through the shared answering path, reporting each committed block as progress. */
  const run = async (args: { path?: string; data?: string }, question: string, options: GenerationOptions, extra: Extra): Promise<AskResult> => {
    if ((args.path === undefined) === (args.data === undefined)) throw new ToolError('give exactly one of `path` and `data`');
    const image = args.path !== undefined ? { path: await roots.check(args.path) } : { bytes: args.data };
    const progressToken = extra._meta?.progressToken;
    // Chained, and awaited before the result goes out: a client drops progress that arrives after the response.
    let sent = Promise.resolve();
    const onPartial = progressToken === undefined ? undefined : (p: { kind: string; block: number; text: string }) => {
      if (p.kind !== 'block') return;
      const params = { progressToken, progress: p.block + 1, message: p.text };
      sent = sent.then(() => extra.sendNotification({ method: 'notifications/progress', params })).catch(() => {});
    };
    const result = await answer(deps, { image, question, options }, extra.signal, onPartial);
    await sent;
    return result;
  };

  const reply = (result: AskResult, text: string): CallToolResult => ({
    content: [{ type: 'text', text }],
    structuredContent: { ...result, text },
  });

  server.registerTool(
    'ask_image',
    {
      title: 'Ask about an image',
      description: 'Answers a question about a local image with the DiffusionVL vision-language model running on this machine (nothing leaves it).',
      inputSchema: { ...imageFields, question: z.string().describe('The question about the image'), ...generationFields },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args, extra) => guarded(extra, async () => {
      const r = await run(args, args.question, { maxNewTokens: args.max_tokens, strategy: args.strategy }, extra);
      return reply(r, r.text);
    }),
  );

  server.registerTool(
    'describe_image',
    {
      title: 'Describe an image',
      description: 'Describes a local image with the DiffusionVL model on this machine: `alt` (short alt text), `caption` (one line) or `detailed`.',
      inputSchema: { ...imageFields, style: z.enum(['alt', 'caption', 'detailed']).optional().describe('Default: caption'), ...generationFields },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args, extra) => guarded(extra, async () => {
      const style = DESCRIBE_STYLES[(args.style ?? 'caption') as DescribeStyle](settings);
      const r = await run(args, style.question, { maxNewTokens: args.max_tokens ?? style.maxNewTokens, strategy: args.strategy }, extra);
      return reply(r, style.shape(r.text));
    }),
  );

  return { server, dispose };
}

/** A problem with the agent's call, reported as the tool's error text. */
class ToolError extends Error {}

/**
 * Turns failures into tool errors the agent can act on (`isError` results naming the kind of problem); a cancelled
 * call is rethrown, since the client that cancelled expects no result.
 */
async function guarded(extra: Extra, fn: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CancelledError || extra.signal.aborted) throw err;
    let text: string;
    if (err instanceof OutsideRootsError) text = `PathOutsideRoots: ${err.message}`;
    else if (err instanceof ToolError) text = `InvalidParams: ${err.message}`;
    else {
      // The sidecar's one mapping from error kinds to protocol codes.
      const e = toResponseError(err);
      text = `${e.data?.code ?? 'InternalError'}: ${e.message}`;
    }
    return { content: [{ type: 'text', text }], isError: true };
  }
}
