#!/usr/bin/env bash
# The benchmark: Debian packages (fio, nbdkit…), build, then bench/run.ts, which measures a local file, nbdkit
# and a Holdfast volume in one run and writes bench/results/latest.{json,md}. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
exec node --import tsx bench/run.ts "$@"
