import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createEngine } from '../../engine/engine';
import { createMcpServer } from '../../mcp/server';
import { parse, UsageError, type Command } from '../command';
import { defaultModelDir, isModelDir } from '../../engine/defaultModel';
import { DEFAULT_PROVIDER, EXECUTION_PROVIDERS } from '../../engine/api';
import { backendFlag, backendHelp, providerFlag, threadsFlag, verifyStepsFlag } from './generate';

const usage = `Usage: diffusionvl mcp [--root DIR]... [--model DIR] [--provider P] [--backend B] [--threads N] [--verify-steps K]

Runs a Model Context Protocol server over stdin/stdout with the tools ask_image and describe_image, answered by the
model on this machine. Image paths must lie under the allowed roots: the --root folders when given, otherwise the
roots the client declares. Logs go to stderr.

Options:
  --root DIR             a folder whose images may be read (repeatable; overrides the client's roots)
  --model DIR            converted model folder (default: models/default in the project)
  --provider P           ${EXECUTION_PROVIDERS.join('|')} (default ${DEFAULT_PROVIDER}; falls back to cpu with a reason)
${backendHelp}
  --threads N            ONNX Runtime intra-op threads
  --verify-steps K       denoising states per forward: auto (default) or an integer (1 = one state per forward)`;

export const mcpCommand: Command = {
  name: 'mcp',
  summary: 'Run an MCP server (stdio) with image tools for agents',
  usage,
  async run(argv) {
    const { values } = parse(argv, { root: { type: 'string', multiple: true }, model: { type: 'string' }, provider: { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' }, 'verify-steps': { type: 'string' } }, false);
    const modelDir = values.model ? resolve(values.model) : defaultModelDir();
    if (!isModelDir(modelDir)) {
      if (values.model) throw new UsageError(`${modelDir} is not a converted model folder (no manifest.json)`);
      throw new UsageError(`no model at ${modelDir}. Run \`npm run setup\` to create the default model, or pass --model <converted-dir>.`);
    }
    const roots = (values.root ?? []).map((r) => resolve(r));
    for (const r of roots) if (!existsSync(r)) throw new UsageError(`--root ${r}: no such folder`);
    // stdout carries the protocol: everything else goes to stderr.
    const log = (msg: string) => process.stderr.write(`diffusionvl mcp: ${msg}\n`);
    console.log = (...args: unknown[]) => log(args.map(String).join(' '));
    console.info = console.log;
    const { server, dispose } = createMcpServer({
      engineFactory: createEngine,
      settings: { modelPath: modelDir, executionProvider: providerFlag(values.provider), backend: backendFlag(values.backend), threads: threadsFlag(values.threads), verifySteps: verifyStepsFlag(values['verify-steps']) },
      roots,
      log,
    });
    await server.connect(new StdioServerTransport());
    log(`serving ${modelDir}${roots.length ? `; roots: ${roots.join(', ')}` : "; roots: the client's"}`);
    // The engine's worker thread would keep the process alive: end with the client's stream.
    return new Promise<number>((done) => {
      const close = () => void dispose().finally(() => done(0));
      process.stdin.once('end', close);
      process.stdin.once('close', close);
    });
  },
};
