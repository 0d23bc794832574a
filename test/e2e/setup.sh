#!/usr/bin/env bash
# Installs everything the end-to-end suite needs, idempotently, on a clean Debian machine with Node 20:
#   OS packages (chromium for Playwright, ripgrep, a C++ toolchain for code-server's native modules),
#   code-server + playwright-core + @vscode/vsce into .cache/e2e (not the project's node_modules),
#   the default model (models/default) if absent, and the packaged .vsix.
# Only the npm registry and Debian's apt are used.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${E2E_CACHE:-$REPO/.cache/e2e}
# npm's temp and @vscode/ripgrep's download cache must be the same folder for the seeding below to be found.
export TMPDIR=$CACHE/tmp
# code-server's node-pty postinstall runs `npx node-gyp`, which aborts when npm would prompt.
export npm_config_yes=true
mkdir -p "$TMPDIR"
step() { local s=$SECONDS; echo "[e2e setup] $1"; shift; "$@"; echo "[e2e setup]   done in $((SECONDS - s))s"; }

need_apt=0
for b in chromium rg g++ make python3; do command -v "$b" >/dev/null || need_apt=1; done
[ -e /usr/include/gssapi/gssapi.h ] || need_apt=1   # kerberos (a code-server dependency) compiles from source
if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then echo "e2e setup: missing OS packages; run as root or install: chromium ripgrep libkrb5-dev g++ make python3" >&2; exit 1; fi
  step "apt packages" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium ripgrep libkrb5-dev g++ make python3 >/dev/null'
fi

# @vscode/ripgrep (used by code-server 4.100) downloads its binary from GitHub in postinstall, which is not
# reachable here; it first looks in its cache, so put Debian's rg there under the asset name it expects.
RG_CACHE=$TMPDIR/vscode-ripgrep-cache-1.15.11
mkdir -p "$RG_CACHE"
[ -f "$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" ] ||
  tar czf "$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg

# Tools: reinstall only when test/e2e/package.json (or its lock) changed.
stamp=$( { cat "$REPO/test/e2e/package.json"; cat "$REPO/test/e2e/package-lock.json" 2>/dev/null || true; } | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -d "$CACHE/node_modules/code-server/lib/vscode/node_modules" ]; then
  cp "$REPO/test/e2e/package.json" "$CACHE/package.json"
  if [ -f "$REPO/test/e2e/package-lock.json" ]; then cp "$REPO/test/e2e/package-lock.json" "$CACHE/"; how=ci; else how=install; fi
  # --unsafe-perm: as root, npm would otherwise drop privileges for code-server's postinstall (which builds native modules).
  step "npm $how (code-server, playwright-core, vsce)" bash -c "cd '$CACHE' && npm $how --unsafe-perm --foreground-scripts --no-audit --no-fund > install.log 2>&1 || { tail -40 install.log; exit 1; }"
  echo "$stamp" > "$CACHE/.stamp"
fi

cd "$REPO"
if [ ! -f models/default/manifest.json ]; then
  # `npm run setup` is the project's one-step install; it creates the default model.
  step "npm run setup (creates models/default)" npm run --silent setup
  [ -f models/default/manifest.json ] || { echo "e2e setup: models/default/manifest.json still missing after npm run setup" >&2; exit 1; }
fi
step "build" npm run --silent build
# A model that generates long enough to be interrupted (restart and cancel scenarios): the random-weight tiny model.
step "long-generation model" node -e "require('./out/test/helpers/tinyModel.js').ensureTinyModel('fp32').then((d) => require('fs').writeFileSync(process.argv[1], d))" "$CACHE/long-model.path"
# A model folder with a GGUF decoder beside the ONNX one (the tiny model, as `convert --decoder both` writes it): the
# llama-cpp scenario runs its decoder on the llama.cpp libraries inside the .vsix.
step "GGUF-decoder model" node -e "require('./out/test/helpers/tinyLlamaModel.js').ensureTinyLlamaModel('qwenvl').then((d) => require('fs').writeFileSync(process.argv[1], d))" "$CACHE/llama-model.path"
step "package .vsix" npm run --silent package
echo "[e2e setup] ready"
