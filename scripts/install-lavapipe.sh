#!/usr/bin/env bash
# Installs Mesa's lavapipe (software Vulkan) from bookworm-backports, so Dawn has an
# adapter on machines without a GPU. The backports entry is derived from the machine's
# existing Debian sources entry (same URIs and Signed-By), never from a written host name.
# Skips everything when a usable lavapipe (Mesa >= 23) is already installed.
set -euo pipefail

have_lavapipe() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 23 && ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}

if have_lavapipe; then
  echo "lavapipe: already installed ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "lavapipe: no apt-get here; install a Vulkan driver (Mesa >= 23 lavapipe or your GPU's) yourself" >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
target=/etc/apt/sources.list.d/${codename}-backports.sources
if ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    # First deb822 stanza whose Suites include the release itself: copy URIs and Signed-By.
    uris=$(awk -v s="$codename" 'BEGIN{RS="";FS="\n"} $0 ~ "Suites:.*(^| )"s"( |$)" || $0 ~ "Suites: *"s"( |$)" {for(i=1;i<=NF;i++) if($i ~ /^URIs:/){sub(/^URIs: */,"",$i); print $i; exit}}' "$src")
    signed=$(awk -v s="$codename" 'BEGIN{RS="";FS="\n"} $0 ~ "Suites: *"s"( |$)" {for(i=1;i<=NF;i++) if($i ~ /^Signed-By:/){sub(/^Signed-By: */,"",$i); print $i; exit}}' "$src")
    [ -n "$uris" ] || { echo "lavapipe: could not read URIs for $codename from $src" >&2; exit 1; }
    {
      echo "Types: deb"
      echo "URIs: $uris"
      echo "Suites: ${codename}-backports"
      echo "Components: main"
      [ -n "$signed" ] && echo "Signed-By: $signed"
    } | $SUDO tee "$target" >/dev/null
  else
    line=$(grep -hE "^deb [^ ]+ ${codename} " /etc/apt/sources.list | head -n1)
    [ -n "$line" ] || { echo "lavapipe: no Debian source entry for $codename found" >&2; exit 1; }
    echo "$line" | sed -E "s/ ${codename} / ${codename}-backports /" | $SUDO tee /etc/apt/sources.list.d/${codename}-backports.list >/dev/null
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -t "${codename}-backports" mesa-vulkan-drivers >/dev/null
have_lavapipe || { echo "lavapipe: install finished but no lvp ICD found" >&2; exit 1; }
echo "lavapipe: installed $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
