#!/usr/bin/env bash
# The main job: installs what is missing, prints the adapter, runs the grounded demo (image,
# masks, DAAM heat maps, overlay and result.json in out/demo/), then the kernel benchmark
# (table + out/bench-kernels.json + chart).
# The demo uses the built-in tiny model, whose weights are random (its pictures are noise);
# MODEL=/path/to/sd15 GROUNDING=/path/to/grounding.pth runs it on real weights instead
# (TOKENIZER=DIR with a single-file MODEL; see weights/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
mkdir -p out
./bin/grounded-sd.mjs info > out/adapter.json
if [ -n "${MODEL:-}" ]; then
  if [ -z "${GROUNDING:-}" ]; then
    echo "main.sh: MODEL=$MODEL needs GROUNDING=/path/to/grounding checkpoint (see weights/README.md)" >&2
    exit 2
  fi
  ./bin/grounded-sd.mjs demo --model "$MODEL" --grounding "$GROUNDING" ${TOKENIZER:+--tokenizer "$TOKENIZER"} --out out/demo
else
  ./bin/grounded-sd.mjs demo --model tiny --out out/demo
fi
./bin/grounded-sd.mjs bench kernels --json out/bench-kernels.json --png out/bench-kernels.png "$@"
