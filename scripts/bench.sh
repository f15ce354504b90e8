#!/usr/bin/env bash
# The benchmark: Debian packages (fio, nbdkit…), build, then bench/run.ts, which measures a local file, nbdkit
# and a Holdfast volume in one run and writes bench/results/latest.{json,md}; then bench/fabric.ts, which measures
# repl=1/2/3 volumes on a 3-node dev cluster, failover and resync (bench/results/fabric.{json,md}). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
node --import tsx bench/run.ts "$@"
exec node --import tsx bench/fabric.ts
