// Sidecar entry: `node dist/server.js --stdio` (or --node-ipc / --socket=N, as vscode-languageclient starts it).
// Kept apart from run.ts so that bundling `serve` into the CLI never starts a server on load.
import { runServer } from './run';

runServer();
