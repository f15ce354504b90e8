#!/usr/bin/env bash
# The whole test suite: Debian packages, build, typecheck, lint, then every test file (real processes, real clients).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
npx tsc --noEmit
npm run --silent lint
exec node scripts/run-tests.mjs "$@"
