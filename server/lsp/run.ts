import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { defaultModelDir } from '../engine/defaultModel';
import { createEngine } from '../engine/engine';
import type { VerifySteps } from '../engine/generationOptions';
import { startServer } from './server';

/** `--model <dir>` (or `--model=<dir>`) on the command line sets the start-up `modelPath`. */
function modelArg(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') return argv[i + 1];
    if (argv[i].startsWith('--model=')) return argv[i].slice('--model='.length);
  }
  return process.env.DIFFUSIONVL_MODEL || undefined;
}

/** `--verify-steps <K|auto>` on the command line pins the `verifySteps` setting (client settings do not change it). */
function verifyStepsArg(argv: string[]): string | undefined {
  const at = argv.indexOf('--verify-steps');
  return at >= 0 ? argv[at + 1] : undefined;
}

/** Starts the server on the transport named in argv; stdout belongs to the protocol from here on. */
export function runServer(argv: string[] = process.argv): void {
  const connection = createConnection(ProposedFeatures.all);
  // Anything printed with console.log would corrupt a stdio transport; route it to the client's log instead.
  console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(' '));
  console.info = console.log;
  const modelPath = modelArg(argv);
  // Nothing configured: the embedded default model, exactly as `diffusionvl ask` does.
  const verifySteps = verifyStepsArg(argv);
  startServer(connection, {
    engineFactory: createEngine,
    settings: modelPath ? { modelPath } : undefined,
    // Checked by the serve command; the store parses it (a string, as the setting's values are).
    pinned: verifySteps !== undefined ? { verifySteps: verifySteps as unknown as VerifySteps } : undefined,
    defaultModelDir: defaultModelDir(),
  });
}

