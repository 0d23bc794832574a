#!/usr/bin/env bash
# Runs the end-to-end suite once (fresh profile and workspace). Needs test/e2e/setup.sh to have run.
# Screenshots, logs and results.json go to test-artifacts/e2e/. Exit 0 = every scenario passed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export E2E_CACHE=${E2E_CACHE:-$REPO/.cache/e2e}
export TMPDIR=$E2E_CACHE/tmp
mkdir -p "$TMPDIR"
cd "$REPO"
exec node test/e2e/suite.mjs
