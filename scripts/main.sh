#!/usr/bin/env bash
# The main job: installs what is missing, prints the adapter, runs the kernel benchmark
# (table + out/bench-kernels.json + chart), and generates with the tiny random-weight SD
# (pass MODEL=/path/to/sd15 to generate with real weights instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
mkdir -p out
./bin/grounded-sd.mjs info > out/adapter.json
./bin/grounded-sd.mjs bench kernels --json out/bench-kernels.json --png out/bench-kernels.png "$@"
if [ -n "${MODEL:-}" ]; then
  ./bin/grounded-sd.mjs generate --model "$MODEL" --prompt "a photograph of a dog and a cat" --steps 50 --seed 0 --out out/
else
  ./bin/grounded-sd.mjs generate --tiny --prompt "a photograph of a dog and a cat" --steps 4 --seed 0 --out out/
fi
