import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import type { DecoderBackend } from '../engine/api';
import { defaultModelDir } from '../engine/defaultModel';
import { createEngine } from '../engine/engine';
import type { VerifySteps } from '../engine/generationOptions';
import { SERVER_API_KEY_ENV } from '../protocol';
import { startServer } from './server';

/** `--<name> <value>` (or `--<name>=<value>`) on the command line. */
function argValue(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1];
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
  }
  return undefined;
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
  // `--model` sets the start-up `modelPath`, `--backend` the start-up `backend` (the client's settings override both).
  const modelPath = argValue(argv, 'model') ?? (process.env.DIFFUSIONVL_MODEL || undefined);
  const backend = argValue(argv, 'backend') as DecoderBackend | undefined;
  const settings = { ...(modelPath ? { modelPath } : {}), ...(backend ? { backend } : {}) };
  // The remote server's key: taken out of the environment so that no worker or child process inherits it.
  const remoteApiKey = process.env[SERVER_API_KEY_ENV] || undefined;
  delete process.env[SERVER_API_KEY_ENV];
  // Nothing configured: the embedded default model, exactly as `diffusionvl ask` does.
  const verifySteps = verifyStepsArg(argv);
  startServer(connection, { engineFactory: createEngine, settings: Object.keys(settings).length ? settings : undefined, defaultModelDir: defaultModelDir(), remoteApiKey,
    // Checked by the serve command; the store parses it (a string, as the setting's values are).
    pinned: verifySteps !== undefined ? { verifySteps: verifySteps as unknown as VerifySteps } : undefined,
  });
}

