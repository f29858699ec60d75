#!/usr/bin/env bash
# Installs what the engine needs: npm packages, and Mesa's lavapipe when the machine has no
# other Vulkan driver (install-lavapipe.sh itself skips when a recent lavapipe is present).
set -euo pipefail
cd "$(dirname "$0")/.."
other_icd=$(ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | grep -v '^lvp' | grep -c '\.json$' || true)
if [ "$other_icd" = 0 ] || [ "${GROUNDED_SD_ADAPTER:-}" = software ]; then
  bash scripts/install-lavapipe.sh
fi
[ -d node_modules/webgpu ] || npm ci --no-audit --no-fund
