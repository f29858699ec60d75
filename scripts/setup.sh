#!/usr/bin/env bash
# Installs what the engine needs: npm packages, and lavapipe when no Vulkan driver exists.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || ! ls /usr/share/vulkan/icd.d/ | grep -qv lvp || [ "${GROUNDED_SD_ADAPTER:-}" = software ]; then
  bash scripts/install-lavapipe.sh
fi
[ -d node_modules/webgpu ] || npm ci --no-audit --no-fund
