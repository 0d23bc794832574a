import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { defaultModelDir } from '../engine/defaultModel';
import { createEngine } from '../engine/engine';
import { SERVER_API_KEY_ENV } from '../protocol';
import { startServer } from './server';

/** `--model <dir>` (or `--model=<dir>`) on the command line sets the start-up `modelPath`. */
function modelArg(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') return argv[i + 1];
    if (argv[i].startsWith('--model=')) return argv[i].slice('--model='.length);
  }
  return process.env.DIFFUSIONVL_MODEL || undefined;
}

/** Starts the server on the transport named in argv; stdout belongs to the protocol from here on. */
export function runServer(argv: string[] = process.argv): void {
  const connection = createConnection(ProposedFeatures.all);
  // Anything printed with console.log would corrupt a stdio transport; route it to the client's log instead.
  console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(' '));
  console.info = console.log;
  const modelPath = modelArg(argv);
  // The remote server's key: taken out of the environment so that no worker or child process inherits it.
  const remoteApiKey = process.env[SERVER_API_KEY_ENV] || undefined;
  delete process.env[SERVER_API_KEY_ENV];
  // Nothing configured: the embedded default model, exactly as `diffusionvl ask` does.
  startServer(connection, { engineFactory: createEngine, settings: modelPath ? { modelPath } : undefined, defaultModelDir: defaultModelDir(), remoteApiKey });
}

