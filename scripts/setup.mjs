// `npm run setup`: a clean install and a build. onnxruntime-node's install script would fetch CUDA libraries from
// NuGet on Linux x64 (hundreds of MB, and a failed install offline). npm ≥ 11.19 never runs it (package.json
// `allowScripts` denies it); npm 10 runs every dependency's script, so it is told to skip through the environment
// variable the script reads (ONNXRUNTIME_NODE_INSTALL), which needs no npm config key.
import { spawnSync } from 'node:child_process';

const npm = process.env.npm_execpath;
const run = (args) => {
  const r = npm
    ? spawnSync(process.execPath, [npm, ...args], { stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } })
    : spawnSync('npm', args, { stdio: 'inherit', shell: process.platform === 'win32', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(['ci']);
run(['run', 'build']);
