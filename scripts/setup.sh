#!/usr/bin/env bash
# Install everything OreMap needs on Debian 12 (bookworm). Idempotent: a second run
# checks and returns in about a second. Run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="qgis python3-qgis python3-venv python3-rasterio python3-geopandas \
python3-sklearn python3-scipy python3-rtree xvfb xauth"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root apt-get install -y -qq --no-install-recommends $missing
fi

# Debian's wrapper passes --noversioncheck, which qgis_process rejects: every call fails.
if [ -f /etc/default/qgis ] && grep -q -- '--noversioncheck' /etc/default/qgis; then
  echo "setup: patching QGIS_OPTS in /etc/default/qgis (qgis_process rejects --noversioncheck)"
  as_root sed -i "s/^QGIS_OPTS=.*/QGIS_OPTS=''/" /etc/default/qgis
fi

# A venv over Debian's python so QGIS's embedded interpreter and ours see the same geo stack.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (system site packages)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

stamp=.venv/.oremap-requirements
want=$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -r requirements.txt
  echo "$want" > "$stamp"
fi
