#!/usr/bin/env bash
# The main job: installs what is missing, prints the adapter, runs the kernel benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
mkdir -p out
./bin/grounded-sd.mjs info > out/adapter.json
./bin/grounded-sd.mjs bench kernels --json out/bench-kernels.json "$@"
