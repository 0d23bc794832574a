import { resolve } from 'node:path';
import { runServer } from '../../lsp/run';
import { parse, type Command } from '../command';
import { DECODER_BACKENDS, DEFAULT_BACKEND } from '../../engine/api';
import { backendFlag, verifyStepsFlag } from './generate';
import { serveHttp, serveHttpUsage } from './serveHttp';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the DiffusionVL language server (for any LSP client), or an OpenAI-compatible HTTP server (--http)',
  usage: [
    'Usage: diffusionvl serve (--stdio | --node-ipc | --socket=<port>) [--model <converted-dir>] [--backend B]',
    '',
    'Starts the sidecar language server: diffusionvl/ask, diffusionvl/status, diffusionvl/prepareModel, hovers and',
    'alt-text code actions on image references. Messages go over the chosen transport; logs go to the client.',
    '',
    'Options:',
    '  --stdio            speak LSP over stdin/stdout',
    '  --node-ipc         speak LSP over the Node IPC channel',
    '  --socket=<port>    connect to a client listening on 127.0.0.1:<port>',
    '  --model <dir>      converted model folder; the client\'s diffusionvl.modelPath setting overrides it. With',
    '                     neither, the embedded default model (models/default) answers, as in `diffusionvl ask`.',
    `  --backend B        ${DECODER_BACKENDS.join('|')}: the text decoder's runtime (default ${DEFAULT_BACKEND}); the client's`,
    '                     diffusionvl.backend setting overrides it.',
    '',
    '  --verify-steps K   denoising states per forward (auto or an integer; overrides diffusionvl.verifySteps)',
    '',
    serveHttpUsage,
  ].join('\n'),
  async run(argv) {
    if (argv.includes('--http')) {
      const { values } = parse(argv, {
        http: { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'string' },
        model: { type: 'string' },
        provider: { type: 'string' },
        backend: { type: 'string' },
        threads: { type: 'string' },
        'api-key-file': { type: 'string' },
        'cors-origin': { type: 'string', multiple: true },
        'allow-image-urls': { type: 'boolean' },
        'max-queue': { type: 'string' },
        'request-timeout': { type: 'string' },
        'verify-steps': { type: 'string' },
      }, false);
      return serveHttp(values);
    }
    const { values } = parse(argv, { stdio: { type: 'boolean' }, 'node-ipc': { type: 'boolean' }, socket: { type: 'string' }, model: { type: 'string' }, backend: { type: 'string' }, clientProcessId: { type: 'string' }, 'verify-steps': { type: 'string' } }, false);
    const transport = values.stdio ? ['--stdio'] : values['node-ipc'] ? ['--node-ipc'] : values.socket ? [`--socket=${values.socket}`] : ['--stdio'];
    const extra = values.clientProcessId ? [`--clientProcessId=${values.clientProcessId}`] : [];
    const model = values.model ? ['--model', resolve(values.model)] : [];
    if (values.backend !== undefined) model.push('--backend', backendFlag(values.backend));
    const verify = verifyStepsFlag(values['verify-steps']);
    if (verify !== undefined) model.push('--verify-steps', String(verify));
    // createConnection reads the transport from process.argv, so present exactly what it expects.
    process.argv = [process.argv[0], process.argv[1], ...transport, ...extra, ...model];
    runServer(process.argv);
    // Never resolve: the process lives as long as the connection (the library exits on `exit`).
    return new Promise<number>(() => {});
  },
};
